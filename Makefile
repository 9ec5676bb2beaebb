# The two commands of the README:
#   make demo   set everything up, then run the main job on demo data rendered from the bundled SoundFont
#   make test   set everything up, then run the test suite (every tier, as CI does)
# and for development:
#   make check  the unit tier alone (no TensorFlow, Chromium or dask cluster)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo

.PHONY: install tools demo test check clean

$(BIN)/timbremap: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the synthesis engines (the demo renders them, the tests render each one)
	$(BIN)/python -m pip install -q -e '.[test,synth]'
	# tinysoundfont renders SoundFonts; its pyaudio requirement is for live playback only
	# and has no Linux wheel, so it is installed without dependencies.
	$(BIN)/python -m pip install -q --no-deps 'tinysoundfont>=0.3'
	touch $@

install: $(BIN)/timbremap

# Debian's tools some tests use: headless chromium opens the interactive map, sf3convert
# makes an SF3 SoundFont (MuseScore's banks come as SF3) for the render test.
tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  missing="$$missing chromium"; \
	command -v sf3convert >/dev/null 2>&1 || missing="$$missing sf3convert"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	$(BIN)/timbremap demo $(DEMO)

# JAX's CPU wheels: a test trains under KERAS_BACKEND=jax too. The suite runs in TEST_WORKERS
# processes, a test file to each (so its module fixtures are made once); a worker that crashes
# fails its test and ends the run (pytest-xdist's restart of it could hang).
TEST_WORKERS ?= 2
test: install tools
	$(BIN)/python -m pip install -q -e '.[jax]'
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --max-worker-restart 0 tests

check: install
	$(BIN)/python -m pytest -q -m "not full" tests

clean:
	rm -rf $(VENV) $(DEMO) bench-out *.egg-info
