# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stage "api": cmocka tests of the libmqttq API against the in-process fake broker.

API_TB := $(B)/tests/unit
API_TESTS := $(API_TB)/test_api

ALL += $(API_TESTS)
CHECK_STAGES += api

$(API_TB)/test_api: $(TOP)/tests/unit/test_api.c $(TOP)/tests/unit/fakebroker.c \
		$(TOP)/tests/unit/fakebroker.h $(LIBMQTTQ_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBMQTTQ_CFLAGS) $(TOP)/tests/unit/test_api.c $(TOP)/tests/unit/fakebroker.c \
		$(LIBMQTTQ_A) -o $@ $(LDFLAGS) $(LIBMQTTQ_LIBS) -lcmocka

.PHONY: check-api
check-api: $(API_TESTS)
	@CMOCKA_MESSAGE_OUTPUT=TAP timeout 120 $(API_TB)/test_api
