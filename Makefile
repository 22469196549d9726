# Airlift — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
FUZZ_SECONDS ?= 60

.PHONY: deps test-deps demo test test-rust lint fuzz-check fuzz bench stress density chaos soak sanitize doc clean deb test-package

## What building and running need (Debian packages; idempotent).
deps:
	scripts/install-deps

## Also what the tests, lints, benches and package checks need.
test-deps:
	scripts/install-deps --test

## Run the main job on the built-in default configuration.
demo: deps
	scripts/demo

## Run every test: unit, property, integration, examples, lints, fuzz corpus
## replay, and the Debian package (lintian, unit hardening, install in a chroot).
test: test-deps lint test-rust fuzz-check test-package

test-rust:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## cargo-deny on Cargo.lock: licences, bans and sources (deny.toml; offline).
## The advisory check needs the RustSec database from github.com:
## `cargo deny check advisories` where that is reachable.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) deny --offline check licenses bans sources

## The fuzz workspace must build; its committed corpus is replayed by `make test-rust`.
fuzz-check:
	$(CARGO) check --manifest-path fuzz/Cargo.toml

## Run the fuzz targets with libFuzzer for FUZZ_SECONDS each (default 60).
fuzz:
	scripts/install-deps --fuzz
	cd fuzz && for t in ipc_decode ts_reader config_parse srt_url srt_input; do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

## Criterion benches, each against a baseline measured in the same run (mix vs
## the pure-add limit, rings vs raw rtrb, render and encode vs the ffmpeg CLI,
## upload vs s3cmd put on a local s3s-fs), the realtime stress run vs
## cyclictest (as root) and pull jobs per core; writes docs/benchmarks.md.
bench: test-deps
	scripts/bench

## Realtime stress run (as root): STRESS_PERIOD-frame periods (default 128)
## under stress-ng, STRESS_SECONDS long.
STRESS_SECONDS ?= 600
STRESS_PERIOD ?= 128
stress: test-deps
	RT_STRESS_PERIOD=$(STRESS_PERIOD) scripts/rt-stress $(STRESS_SECONDS)

## Density (as root): ramps live flows, 5 Mbit/s pull jobs and SRT outputs
## until the first miss or loss, with memory per flow and baselines
## (cyclictest, srt-live-transmit); writes its section of docs/benchmarks.md.
density: test-deps
	$(CARGO) build --release -p airlift-engine-daemon -p airlift-benches --bins
	$(or $(CARGO_TARGET_DIR),target)/release/density $(DENSITY_ARGS)

## The transition torture test with more steps than CI's 60: reloads, kills,
## restarts, stop/start, pulls and S3 outages against the real daemons
## (ctl/tests/torture). CHAOS_SEED=N replays a sequence; the seed is printed.
CHAOS_STEPS ?= 300
chaos:
	CHAOS_STEPS=$(CHAOS_STEPS) $(CARGO) test -p airlift-ctl --test torture -- --nocapture

## Network-input drift soak: senders 100 ppm fast and slow into SRT inputs
## for 10 minutes each (engine/daemon/tests/srt_drift.rs), checked for phase
## continuity, the drift estimate and zero dropped/inserted frames.
soak: test-deps
	$(CARGO) test -p airlift-engine-daemon --test srt_drift -- --ignored --nocapture --test-threads=2

## AddressSanitizer (and LeakSanitizer) over the ipc crate and the engine's
## unit tests and FFI-driving integration tests; Miri needs a nightly toolchain.
sanitize: test-deps
	scripts/sanitize

## Build target/debian/airlift_*.deb.
deb: test-deps
	scripts/build-deb

## lintian, systemd-analyze security, and install/remove/purge in a Debian 12 chroot.
test-package: deb
	scripts/check-units
	lintian --fail-on error $${CARGO_TARGET_DIR:-target}/debian/airlift_*.deb
	scripts/test-deb

doc:
	$(CARGO) doc --workspace --no-deps

clean:
	$(CARGO) clean
