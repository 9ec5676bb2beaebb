# The two commands of the README:
#   make demo   set everything up, then run the main job on demo data rendered from the bundled SoundFont
#   make test   set everything up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo

.PHONY: install demo test clean

$(BIN)/timbremap: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# tinysoundfont renders SoundFonts; its pyaudio requirement is for live playback only
	# and has no Linux wheel, so it is installed without dependencies.
	$(BIN)/python -m pip install -q --no-deps 'tinysoundfont>=0.3'
	touch $@

install: $(BIN)/timbremap

demo: install
	$(BIN)/timbremap render $(DEMO)/notes --pitch-step 3 --velocities 75 127 -q
	$(BIN)/timbremap build $(DEMO)/notes $(DEMO)/store --jobs 2
	$(BIN)/timbremap inspect $(DEMO)/store

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) $(DEMO) bench-out *.egg-info
