# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "fuzz-client": libFuzzer harness of the library's receive path (a real client, fuzzed broker stream).
#
#   make check-fuzz-client   FUZZ_CLIENT_TIME seconds (20), one TAP line
#   make fuzz-client-long    10 minutes (FUZZ_LONG_TIME)
# The library and the core are compiled into the harness with the fuzzer and
# sanitizer flags (the lib's own objects carry none). Seeds come from the
# same source built with -DGEN_SEEDS; findings land in
# $(B)/tests/fuzz/crash-fuzz_client-* with the output in fuzz_client.log.

FUZZC_BIN := $(B)/tests/fuzz/fuzz_client
FUZZC_SEEDS := $(B)/tests/fuzz/seed_client
FUZZ_CLIENT_TIME ?= 20
FUZZC_SRCS = $(LIBMQTTQ_SRCS) $(LIBMQTTQ_CORE_SRCS) $(MQF_DIR)/mqf.c

CHECK_STAGES += fuzz-client

$(FUZZC_BIN): $(TOP)/tests/fuzz/fuzz_client.c $(LIBMQTTQ_SRCS) $(LIBMQTTQ_CORE_SRCS) \
		$(LIBMQTTQ_HDRS) $(MQF_DIR)/mqf.c $(MQF_SKEL)
	@mkdir -p $(@D)
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
		-fvisibility=hidden -I$(LIBMQTTQ_DIR)/include -I$(LIBMQTTQ_DIR)/src \
		$(MQF_CFLAGS) $(MQC_CFLAGS) $< $(FUZZC_SRCS) -o $@ $(LIBMQTTQ_LIBS)

$(B)/tests/fuzz/gen_client_seeds: $(TOP)/tests/fuzz/fuzz_client.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DGEN_SEEDS $< -o $@ $(LDFLAGS)

$(FUZZC_SEEDS).stamp: $(B)/tests/fuzz/gen_client_seeds
	rm -rf $(FUZZC_SEEDS) && mkdir -p $(FUZZC_SEEDS)
	$< $(FUZZC_SEEDS)
	touch $@

.PHONY: check-fuzz-client fuzz-client-long fuzz-client-bins
fuzz-client-bins: $(FUZZC_BIN) $(FUZZC_SEEDS).stamp

# $(1) seconds; prints "ok 1 - fuzz_client (E execs in S s)" from libFuzzer's summary.
define fuzz_client_run
	@echo "1..1"; c=$(B)/tests/fuzz/corpus_client; mkdir -p $$c; \
	log=$(B)/tests/fuzz/fuzz_client.log; \
	if $(FUZZC_BIN) -max_total_time=$(1) -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
		-artifact_prefix=$(B)/tests/fuzz/crash-fuzz_client- -print_final_stats=1 \
		$$c $(FUZZC_SEEDS) >$$log 2>&1; then \
		execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
		cov=$$(grep -o 'cov: [0-9]*' $$log | tail -n 1); \
		echo "ok 1 - fuzz_client ($${execs:-?} execs in $(1) s, $${cov:-cov: ?})"; \
	else \
		echo "not ok 1 - fuzz_client (see $$log)"; tail -n 40 $$log | sed 's/^/# /'; exit 1; \
	fi
endef

check-fuzz-client: fuzz-client-bins
	$(call fuzz_client_run,$(FUZZ_CLIENT_TIME))

fuzz-client-long: fuzz-client-bins
	$(call fuzz_client_run,$(FUZZ_LONG_TIME))
