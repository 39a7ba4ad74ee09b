# The two set-up commands are `make up` and `make test`; each installs what is missing first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
# ccache keys on paths relative to the checkout, so a second clone reuses the cache.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
BENCH ?=

.PHONY: deps configure build test up bench clean format

deps:
	@./scripts/deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; fi

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@./scripts/thread-safety-check.sh
	@./scripts/test-peers.sh
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

up: build
	@$(BUILD_DIR)/meridian up --example examples/jobs/hello.yaml

bench: build
	@./scripts/deps.sh --bench
	@./scripts/test-peers.sh
	@./scripts/bench.sh $(BENCH)

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR)
