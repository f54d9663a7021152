# SPDX-License-Identifier: GPL-2.0 OR MIT
# make bench-lib: libmqttq vs libmosquitto publish benchmark (numbers, not a test).

BENCH_LIB_BIN := $(B)/bench/lib/bench_lib

ALL += $(BENCH_LIB_BIN)

$(BENCH_LIB_BIN): $(TOP)/bench/lib/bench_lib.c $(LIBMQTTQ_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBMQTTQ_CFLAGS) $< $(LIBMQTTQ_A) -o $@ $(LDFLAGS) $(LIBMQTTQ_LIBS) -lmosquitto

.PHONY: bench-lib
bench: bench-lib
bench-lib: $(BENCH_LIB_BIN)
	@bash $(TOP)/bench/lib/run.sh $(BENCH_LIB_BIN)
