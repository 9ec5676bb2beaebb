# The two commands of the README:
#   make demo   set everything up, then run the main job on demo data rendered from the bundled SoundFont
#   make test   set everything up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo

.PHONY: install browser demo test clean

$(BIN)/timbremap: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# tinysoundfont renders SoundFonts; its pyaudio requirement is for live playback only
	# and has no Linux wheel, so it is installed without dependencies.
	$(BIN)/python -m pip install -q --no-deps 'tinysoundfont>=0.3'
	touch $@

install: $(BIN)/timbremap

# The interactive map's test opens it in Debian's headless chromium.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the map test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: install
	$(BIN)/timbremap demo $(DEMO)

test: install browser
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) $(DEMO) bench-out *.egg-info
