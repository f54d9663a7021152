# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "integration": libmqttq against a real mosquitto, and interop with libmosquitto/paho peers.

IT_B := $(B)/tests/integration
IT_BIN := $(IT_B)/mqttq-it

IT_OBO := $(IT_B)/mqttq-obo-it

ALL += $(IT_BIN) $(IT_OBO)
CHECK_STAGES += integration

$(IT_BIN): $(TOP)/tests/integration/mqttq_it.c $(B)/tests/peers/peer_common.o $(LIBMQTTQ_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBMQTTQ_CFLAGS) $< $(B)/tests/peers/peer_common.o $(LIBMQTTQ_A) -o $@ \
		$(LDFLAGS) $(LIBMQTTQ_LIBS)

.PHONY: check-integration
check-integration: $(IT_BIN) $(PEER_BINS)
	@timeout 300 bash $(TOP)/tests/integration/run.sh $(B)

$(IT_OBO): $(TOP)/tests/integration/obo_it.c $(LIBMQTTQ_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBMQTTQ_CFLAGS) $< $(LIBMQTTQ_A) -o $@ $(LDFLAGS) $(LIBMQTTQ_LIBS)

# Stage "offload": the offload engine against mosquitto inside the VM, on one kernel.
CHECK_STAGES += offload

.PHONY: check-offload
check-offload: $(IT_BIN) $(IT_OBO) $(KMOD_KOS)
	@bash $(TOP)/tests/integration/check-offload.sh $(B) $(KMOD_VM_RELS)
