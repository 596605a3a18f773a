"""The passive monitor: capture files and live interfaces -> TCP reassembly -> HTTP/SMTP transactions
-> the inspection core, in monitor mode (verdicts become alerts and incidents; nothing is blocked)."""
