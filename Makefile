# The two set-up commands of the README, and the benchmark. Everything goes through
# scripts/with-torch, which sets up PyTorch 2.11.0's libtorch once (outside the clone) and builds.
JESTER := scripts/with-torch cargo run --quiet -p jester-cli --
DEMO := jester-demo

.PHONY: demo test python test-python bench-select bench-train

# The main job: the paper's headline comparison (uniform vs JEST vs Flexi-JEST) on built-in synthetic
# scenes at a quick budget; prints the table and where report.md and curves.png are.
demo:
	$(JESTER) demo --out $(DEMO)

test:
	scripts/with-torch cargo test --workspace
	$(MAKE) test-python

# The Python package (crates/jester-py), built with maturin against the venv's torch and installed
# into it; its own cargo workspace shares this target folder.
python:
	scripts/with-torch scripts/build-python

# The open_clip example's pins (examples/requirements.txt) too, so its smoke test runs, not skips.
test-python: python
	scripts/with-torch python -m pip install --quiet --disable-pip-version-check -r examples/requirements.txt
	scripts/with-torch python -m pytest -q crates/jester-py/tests

bench-select:
	$(JESTER) bench select --numpy --naive --out target/bench-select.json

bench-train:
	$(JESTER) bench train --steps 10 --warmup 2 --out target/bench-train.json
