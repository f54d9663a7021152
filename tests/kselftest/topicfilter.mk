# SPDX-License-Identifier: GPL-2.0
# Link rule of the kselftest that runs the real eBPF topic filter in the module: it needs the mqf_* loader.

# An explicit rule overrides kselftest.mk's pattern rule for this one binary.
$(KSFT_B)/ulp_topicfilter: $(TOP)/tests/kselftest/ulp_topicfilter.c $(KSFT_HDRS) \
		$(wildcard $(TOP)/tests/kselftest/*.h) $(wildcard $(TOP)/libmqttq/include/*.h) \
		$(MQF_OBJS) $(MQF_MATCH_O)
	@mkdir -p $(@D)
	$(CC) $(KSFT_CFLAGS) $(MQF_CFLAGS) $< $(MQF_OBJS) $(MQF_MATCH_O) -o $@ $(LDFLAGS) \
		$(MQF_LIBS) -luring -lpthread
