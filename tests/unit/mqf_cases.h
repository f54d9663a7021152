/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Topic-matching cases (MQTT 3.1.1/5.0 section 4.7 and edge cases) shared by the matcher tests. */
#ifndef MQF_CASES_H
#define MQF_CASES_H

#include <stdbool.h>

struct mqf_case {
	const char *filter;
	const char *topic;
	bool match;
};

static const struct mqf_case mqf_cases[] = {
	/* 4.7.1.2: multi-level wildcard */
	{ "sport/tennis/player1/#", "sport/tennis/player1", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
	{ "sport/tennis/player1/#", "sport/tennis/player2", false },
	{ "sport/tennis/player1/#", "sport/tennis", false },
	{ "sport/#", "sport", true },
	{ "sport/#", "sport/", true },
	{ "sport/#", "sports", false },
	{ "#", "sport/tennis/player1", true },
	{ "#", "/", true },
	{ "sport/tennis/#", "sport/tennis/player1/ranking", true },
	/* 4.7.1.3: single-level wildcard */
	{ "sport/tennis/+", "sport/tennis/player1", true },
	{ "sport/tennis/+", "sport/tennis/player2", true },
	{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
	{ "sport/+", "sport", false },
	{ "sport/+", "sport/", true },
	{ "+", "sport", true },
	{ "+", "", false },
	{ "+/tennis/#", "sport/tennis/player1", true },
	{ "+/tennis/#", "sport/tennis", true },
	{ "sport/+/player1", "sport/tennis/player1", true },
	{ "sport/+/player1", "sport//player1", true },
	{ "/finance", "/finance", true },
	{ "+/+", "/finance", true },
	{ "/+", "/finance", true },
	{ "+", "/finance", false },
	/* 4.7.2: topics beginning with '$' */
	{ "#", "$SYS/monitor/Clients", false },
	{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
	{ "$SYS/#", "$SYS/monitor/Clients", true },
	{ "$SYS/#", "$SYS", true },
	{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
	{ "$SYS", "$SYS", true },
	{ "+", "$SYS", false },
	{ "+/#", "$SYS/x", false },
	{ "a/$SYS/+", "a/$SYS/b", true },
	{ "+/$x", "a/$x", true },
	{ "#", "a$", true },
	/* 4.7.3: case-sensitive, empty levels significant */
	{ "ACCOUNTS", "Accounts", false },
	{ "Accounts", "Accounts", true },
	{ "a//b", "a//b", true },
	{ "a//b", "a/b", false },
	{ "a/+/b", "a//b", true },
	{ "/a", "/a", true },
	{ "/a", "a", false },
	{ "a/", "a/", true },
	{ "a/", "a", false },
	{ "a", "a/", false },
	{ "+/+", "/", true },
	{ "/", "/", true },
	{ "//", "/", false },
	{ "+/+/+", "//", true },
	{ "a/#", "a//", true },
	{ "/#", "/", true },
	{ "/#", "", false },
	{ "/#", "a", false },
	{ "+/#", "/", true },
	{ "a/+/#", "a", false },
	{ "a/+/#", "a/b", true },
	{ "a/b", "a/b/c", false },
	{ "a/b/c", "a/b", false },
	{ "x y/z", "x y/z", true },
	{ "\xc3\xa4/+", "\xc3\xa4/b", true },
	{ "\xc3\xa4/+", "\xc3\xa5/b", false },
};

/* Filters every matcher must refuse. */
static const char *const mqf_bad_filters[] = {
	"",
	"a/#/b",
	"a+",
	"+a",
	"#a",
	"a#",
	"a/b#",
	"sport/tennis#",
	"sport/tennis/#/ranking",
	"sport+",
	"++",
	"##",
	"#/",
	"+#",
	"a/++/b",
	"a/+b",
	"a/b+/c",
	"a/#/",
	"#/#",
};

#define MQF_NCASES (sizeof(mqf_cases) / sizeof(mqf_cases[0]))
#define MQF_NBAD (sizeof(mqf_bad_filters) / sizeof(mqf_bad_filters[0]))

#endif
