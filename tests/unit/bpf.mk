# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "bpf": the reference matcher (cmocka) and the eBPF topic filter (TAP, needs CAP_BPF).

MQF_TB := $(B)/tests/unit
MQF_TESTS := $(MQF_TB)/test_match $(MQF_TB)/test_bpf_filter

ALL += $(MQF_TESTS)
CHECK_STAGES += bpf

$(MQF_TB)/test_match: $(TOP)/tests/unit/test_match.c $(TOP)/tests/unit/mqf_cases.h $(MQF_B)/match.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -I$(TOP)/libmqttq/src $< $(MQF_B)/match.o -o $@ $(LDFLAGS) -lcmocka

$(MQF_TB)/test_bpf_filter: $(TOP)/tests/unit/test_bpf_filter.c $(TOP)/tests/unit/mqf_cases.h \
		$(MQF_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MQF_CFLAGS) $< $(MQF_OBJS) -o $@ $(LDFLAGS) $(MQF_LIBS)

.PHONY: check-bpf
check-bpf: $(MQF_TESTS)
	@rc=0; CMOCKA_MESSAGE_OUTPUT=TAP $(MQF_TB)/test_match || rc=1; \
	$(MQF_TB)/test_bpf_filter || rc=1; exit $$rc
