# SPDX-License-Identifier: GPL-2.0 OR MIT
# Build of the benchmark helpers (command wrapper that measures cost, ack-sink responder) and `make bench`.

BENCH_B := $(B)/bench
BENCH_BINS := $(BENCH_B)/bench-measure $(BENCH_B)/bench-acksink
ALL += $(BENCH_BINS)

$(BENCH_B)/bench-%: $(TOP)/bench/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

.PHONY: bench bench-bins
bench-bins: $(BENCH_BINS)
bench: deps
	@bash $(TOP)/scripts/bench.sh

# Quick mode only proves the bench runs end to end; it asserts nothing about speed.
CHECK_STAGES += bench-quick
.PHONY: check-bench-quick
check-bench-quick: $(TOOLS_BINS) $(BENCH_BINS) peer-bins
	@BENCH_QUICK=1 bash $(TOP)/scripts/bench.sh --tap
