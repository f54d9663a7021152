# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "netem": libmqttq publisher/subscriber and mosquitto across a lossy, reordering veth (netem) in the VM, judged by mqttq-eocheck.
#
#   make check-netem   one kernel (the newest in /boot), QoS 1 and 2 x MQTT 3.1.1 and 5 on the
#                      userspace and the offload engine, MQTTQ_NETEM_N (2000) messages each

CHECK_STAGES += netem

.PHONY: check-netem
check-netem: $(KMOD_KOS) $(B)/tests/fault/mqttq-pubdrv $(B)/tests/fault/mqttq-subdrv $(B)/tests/fault/mqttq-eocheck
	@mkdir -p $(B)/check
	@bash $(TOP)/tests/fault/netem/run.sh $(B)
