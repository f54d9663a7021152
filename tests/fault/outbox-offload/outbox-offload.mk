# SPDX-License-Identifier: GPL-2.0 OR MIT
# Stage "outbox-offload": the SIGKILL + crash-safe outbox fault scenario with the publisher on the offload engine (mqttq.ko, in qemu).

CHECK_STAGES += outbox-offload

.PHONY: check-outbox-offload
check-outbox-offload: $(FAULT_BINS) $(KMOD_KOS) | peer-bins
	@bash $(TOP)/tests/fault/outbox-offload/check.sh $(B) $(KMOD_VM_RELS)
