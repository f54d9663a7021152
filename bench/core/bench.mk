# SPDX-License-Identifier: GPL-2.0 OR MIT
# `make bench-core`: ns per encode/decode/engine cycle of the protocol core, and its allocation count.

BENCH_CORE := $(B)/bench/core/bench_core
BENCH_CORE_ITERS ?= 2000000
# This fragment is read before libmqttq/core/core.mk, so name the core's
# objects here rather than through $(MQC_OBJS), which is still empty.
BENCH_CORE_OBJS := $(patsubst $(TOP)/libmqttq/core/%.c,$(B)/libmqttq/core/%.o,\
	$(wildcard $(TOP)/libmqttq/core/*.c))

$(BENCH_CORE): $(TOP)/bench/core/bench_core.c $(BENCH_CORE_OBJS) \
		$(wildcard $(TOP)/libmqttq/core/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -I$(TOP)/libmqttq/core $< $(BENCH_CORE_OBJS) -o $@ $(LDFLAGS)

.PHONY: bench-core
bench-core: $(BENCH_CORE)
	$(BENCH_CORE) $(BENCH_CORE_ITERS)
