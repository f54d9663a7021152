# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "fault-offload": the fault scenario matrix with libmqttq on the offload engine (mqttq.ko) in the VM.
#
#   make check-fault-offload   newest kernel in /boot, MQTTQ_FAULT_OFFLOAD_N (600) messages per scenario
#   make soak-fault-offload    tests/fault/soak.sh in the VM on the offload engine, SOAK_N per QoS

CHECK_STAGES += fault-offload

FAULT_OFFLOAD_DEPS := $(KMOD_KOS) $(B)/tests/fault/mqttq-pubdrv $(B)/tests/fault/mqttq-subdrv \
	$(B)/tests/fault/mqttq-eocheck $(B)/tests/fault/mqttq-faultproxy $(B)/tests/fault/mqttq-freeport

.PHONY: check-fault-offload soak-fault-offload
check-fault-offload: $(FAULT_OFFLOAD_DEPS)
	@mkdir -p $(B)/check
	@bash $(TOP)/tests/fault/offload/run.sh $(B)

soak-fault-offload: $(FAULT_OFFLOAD_DEPS)
	@mkdir -p $(B)/check
	@SOAK_N=$(SOAK_N) SOAK_RATE=$(SOAK_RATE) bash $(TOP)/tests/fault/offload/soak.sh $(B)
