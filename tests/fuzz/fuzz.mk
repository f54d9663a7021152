# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "fuzz": libFuzzer harnesses of the core's decoder and engine (clang, ASan+UBSan).
#
#   make check-fuzz   each harness for FUZZ_TIME seconds (20), one TAP line each
#   make fuzz-long    each harness for 10 minutes (FUZZ_LONG_TIME=600)
# Seed corpora are generated at build time by gen_seeds (no blobs in the tree);
# findings land in $(B)/tests/fuzz/crash-* with the harness output in *.log.

FUZZ_B := $(B)/tests/fuzz
FUZZ_HARNESSES := fuzz_decode fuzz_engine
FUZZ_BINS := $(addprefix $(FUZZ_B)/,$(FUZZ_HARNESSES))
FUZZ_TIME ?= 20
FUZZ_LONG_TIME ?= 600
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter

CHECK_STAGES += fuzz

$(FUZZ_B)/fuzz_%: $(TOP)/tests/fuzz/fuzz_%.c $(MQC_SRCS) $(MQC_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) $(MQC_CFLAGS) $< $(MQC_SRCS) -o $@

$(FUZZ_B)/gen_seeds: $(TOP)/tests/fuzz/gen_seeds.c $(MQC_OBJS) $(MQC_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MQC_CFLAGS) $< $(MQC_OBJS) -o $@ $(LDFLAGS)

$(FUZZ_B)/seeds.stamp: $(FUZZ_B)/gen_seeds
	rm -rf $(FUZZ_B)/seed_decode $(FUZZ_B)/seed_engine
	mkdir -p $(FUZZ_B)/seed_decode $(FUZZ_B)/seed_engine
	$< $(FUZZ_B)/seed_decode $(FUZZ_B)/seed_engine
	touch $@

.PHONY: check-fuzz fuzz-long fuzz-bins
fuzz-bins: $(FUZZ_BINS) $(FUZZ_B)/seeds.stamp

# $(1) seconds per harness; prints "ok N - fuzz_x (E execs in S s)" from libFuzzer's summary.
define fuzz_run
	@rc=0; i=0; echo "1..$(words $(FUZZ_HARNESSES))"; \
	for h in $(FUZZ_HARNESSES); do \
		i=$$((i + 1)); c=$(FUZZ_B)/corpus_$${h#fuzz_}; mkdir -p $$c; \
		log=$(FUZZ_B)/$$h.log; \
		if $(FUZZ_B)/$$h -max_total_time=$(1) -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=$(FUZZ_B)/crash-$$h- -print_final_stats=1 \
			$$c $(FUZZ_B)/seed_$${h#fuzz_} >$$log 2>&1; then \
			execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
			echo "ok $$i - $$h ($${execs:-?} execs in $(1) s)"; \
		else \
			echo "not ok $$i - $$h (see $$log)"; tail -n 30 $$log | sed 's/^/# /'; rc=1; \
		fi; \
	done; exit $$rc
endef

check-fuzz: fuzz-bins
	$(call fuzz_run,$(FUZZ_TIME))

fuzz-long: fuzz-bins
	$(call fuzz_run,$(FUZZ_LONG_TIME))
