# SPDX-License-Identifier: GPL-2.0 OR MIT
# Build and test rules of the fault-injecting proxy, the exactly-once checker and their tests.

FAULT_B := $(B)/tests/fault
FAULT_BINS := $(FAULT_B)/mqttq-faultproxy $(FAULT_B)/mqttq-eocheck $(FAULT_B)/mqttq-freeport \
	$(FAULT_B)/test-frame $(FAULT_B)/test-proxy
# libmqttq drivers with the peer drivers' flags and JSON (tests/peers/README.md).
FAULT_MQTTQ_BINS := $(FAULT_B)/mqttq-pubdrv $(FAULT_B)/mqttq-subdrv
FAULT_BINS += $(FAULT_MQTTQ_BINS)
ALL += $(FAULT_BINS)
CHECK_STAGES += fault

$(FAULT_B)/%.o: $(TOP)/tests/fault/%.c $(TOP)/tests/fault/mqtt_frame.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(FAULT_B)/mqttq-%drv.o: $(TOP)/tests/fault/mqttq-%drv.c $(TOP)/tests/peers/peer_common.h \
		$(LIBMQTTQ_DIR)/include/mqttq.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBMQTTQ_CFLAGS) -c -o $@ $<

$(FAULT_B)/mqttq-%drv: $(FAULT_B)/mqttq-%drv.o $(B)/tests/peers/peer_common.o $(LIBMQTTQ_A)
	$(CC) $(LDFLAGS) -o $@ $< $(B)/tests/peers/peer_common.o $(LIBMQTTQ_A) $(LIBMQTTQ_LIBS)

$(FAULT_B)/mqttq-faultproxy: $(FAULT_B)/faultproxy.o $(FAULT_B)/mqtt_frame.o
	$(CC) $(LDFLAGS) -o $@ $^

$(FAULT_B)/mqttq-eocheck: $(FAULT_B)/eocheck.o
	$(CC) $(LDFLAGS) -o $@ $^

$(FAULT_B)/mqttq-freeport: $(FAULT_B)/freeport.o
	$(CC) $(LDFLAGS) -o $@ $^

$(FAULT_B)/test-frame: $(FAULT_B)/test_frame.o $(FAULT_B)/mqtt_frame.o
	$(CC) $(LDFLAGS) -o $@ $^

$(FAULT_B)/test-proxy: $(FAULT_B)/test_proxy.o
	$(CC) $(LDFLAGS) -o $@ $^

.PHONY: check-fault soak-fault
check-fault: $(FAULT_BINS) | peer-bins
	@B=$(B) bash $(TOP)/tests/fault/run-tests.sh

# Long run, not part of make check: 10^6 messages per QoS through random faults.
SOAK_N ?= 1000000
SOAK_RATE ?= 0.0002
soak-fault: $(FAULT_BINS) | peer-bins
	@B=$(B) SOAK_N=$(SOAK_N) SOAK_RATE=$(SOAK_RATE) bash $(TOP)/tests/fault/soak.sh

# Keep objects: they are intermediate to make, and rebuilding them every run is waste.
.PRECIOUS: $(FAULT_B)/%.o $(FAULT_B)/mqttq-%drv.o
