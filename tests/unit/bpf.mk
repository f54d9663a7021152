# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stages "bpf" (reference matcher + eBPF topic filter on the host) and "bpfvm" (the filter in qemu).

MQF_TB := $(B)/tests/unit
MQF_TESTS := $(MQF_TB)/test_match $(MQF_TB)/test_bpf_filter

ALL += $(MQF_TESTS)
CHECK_STAGES += bpf bpfvm
# The Debian kernels the filter must load on besides the host's (Raspberry Pi OS: 6.1, 6.12).
MQF_VM_RELS = $(patsubst /boot/vmlinuz-%,%,$(wildcard /boot/vmlinuz-6.1.* /boot/vmlinuz-6.12.*))

$(MQF_TB)/test_match: $(TOP)/tests/unit/test_match.c $(TOP)/tests/unit/mqf_cases.h $(MQF_MATCH_O)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -I$(TOP)/libmqttq/src $< $(MQF_MATCH_O) -o $@ $(LDFLAGS) -lcmocka

$(MQF_TB)/test_bpf_filter: $(TOP)/tests/unit/test_bpf_filter.c $(TOP)/tests/unit/mqf_cases.h \
		$(MQF_OBJS) $(MQF_MATCH_O)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MQF_CFLAGS) $< $(MQF_OBJS) $(MQF_MATCH_O) -o $@ $(LDFLAGS) $(MQF_LIBS)

.PHONY: check-bpf
check-bpf: $(MQF_TESTS)
	@rc=0; CMOCKA_MESSAGE_OUTPUT=TAP $(MQF_TB)/test_match || rc=1; \
	$(MQF_TB)/test_bpf_filter || rc=1; exit $$rc

# The same binary inside the VM on each kernel, with a smaller differential run (TCG is slow).
.PHONY: check-bpfvm
check-bpfvm: $(MQF_TB)/test_bpf_filter
	@rc=0; n=0; \
	for r in $(MQF_VM_RELS); do \
		[ -x $(TOP)/tests/vm/run ] || break; \
		n=$$((n + 1)); \
		$(TOP)/tests/vm/run $$r --timeout 600 --env MQF_QUICK=1 -- \
			$(MQF_TB)/test_bpf_filter || rc=1; \
	done; \
	[ $$n -gt 0 ] || echo "ok 1 - bpf filter in the VM # SKIP no tests/vm/run or 6.1/6.12 image"; \
	exit $$rc
