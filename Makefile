# The two set-up commands of the README, and the benchmark. Everything goes through
# scripts/with-torch, which sets up PyTorch 2.11.0's libtorch once (outside the clone) and builds.
JESTER := scripts/with-torch cargo run --quiet -p jester-cli --
DEMO := jester-demo

.PHONY: demo test bench-select bench-train

# The main job. Until `jester demo` exists (training + the paper's headline comparison), it runs
# JEST selection on a generated clustered super-batch: uniform, independent and joint side by side.
demo:
	$(JESTER) data embeddings --out $(DEMO)/embeddings --set examples=20480 --set dim=256 --set clusters=256
	for method in uniform independent joint; do \
	  $(JESTER) select --learner $(DEMO)/embeddings/learner.safetensors \
	    --reference $(DEMO)/embeddings/reference.safetensors \
	    --method $$method --filter-ratio 0.8 --chunks 16 --out $(DEMO)/selection-$$method.json || exit 1; \
	done

test:
	scripts/with-torch cargo test --workspace

bench-select:
	$(JESTER) bench select --numpy --naive --out target/bench-select.json

bench-train:
	$(JESTER) bench train --steps 10 --warmup 2 --out target/bench-train.json
