# SPDX-License-Identifier: GPL-2.0 OR MIT
# Test stages "unit" and "unit-san": every cmocka binary in UNIT_TESTS, as TAP.
#
# Another fragment adds a test by building it with its own rule and appending
#   UNIT_TESTS += $(B)/tests/unit/test_foo
# (add it to UNIT_SAN_TESTS too when it should also run under ASan+UBSan).
# Both lists are expanded when the stage runs, so fragment order does not
# matter. "unit" also checks that the core objects call nothing but the
# compiler's mem* helpers (the core is freestanding). "unit-san" rebuilds
# UNIT_SAN_TESTS with SAN=1 into build-san/ and runs them.

UNIT_B := $(B)/tests/unit
UNIT_CORE_TESTS := $(UNIT_B)/test_codec $(UNIT_B)/test_engine
UNIT_TESTS += $(UNIT_CORE_TESTS)
UNIT_SAN_TESTS += $(UNIT_CORE_TESTS)

ALL += $(UNIT_CORE_TESTS)
CHECK_STAGES += unit unit-san

$(UNIT_CORE_TESTS): $(UNIT_B)/%: $(TOP)/tests/unit/%.c $(MQC_OBJS) $(MQC_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MQC_CFLAGS) $< $(MQC_OBJS) -o $@ $(LDFLAGS) -lcmocka

.PHONY: check-unit check-unit-san unit-bins unit-san-bins
unit-bins: $(UNIT_TESTS)
unit-san-bins: $(UNIT_SAN_TESTS)

# The freestanding check is one TAP plan of its own, ahead of the cmocka ones.
check-unit:
	@$(MAKE) --no-print-directory unit-bins >/dev/null
	@rc=0; nm -g --defined-only $(MQC_OBJS) | awk 'NF==3{print $$3}' | sort -u >$(UNIT_B)/core.def; \
	undef=$$(nm -u $(MQC_OBJS) | awk '/ U /{print $$2}' | sort -u | comm -23 - $(UNIT_B)/core.def | \
		grep -Ev '^(memcpy|memset|memcmp|memmove|__stack_chk_fail|__(asan|ubsan|sanitizer)_.*)$$' | \
		tr '\n' ' '); \
	echo "1..1"; \
	if [ -z "$$undef" ]; then echo "ok 1 - core_freestanding_no_libc_calls"; \
	else echo "not ok 1 - core_freestanding_no_libc_calls # calls: $$undef"; rc=1; fi; \
	for t in $(UNIT_TESTS); do CMOCKA_MESSAGE_OUTPUT=TAP $$t || rc=1; done; exit $$rc

check-unit-san:
	@$(MAKE) --no-print-directory SAN=1 unit-san-bins >/dev/null
	@rc=0; for t in $(patsubst $(B)/%,$(TOP)/build-san/%,$(UNIT_SAN_TESTS)); do \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		CMOCKA_MESSAGE_OUTPUT=TAP $$t || rc=1; done; exit $$rc
