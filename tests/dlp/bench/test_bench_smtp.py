"""`dlp bench smtp` on a small load: both sides measured, accounting exact, held cards in the quarantine."""

from __future__ import annotations

import argparse

from dlp.bench import smtp


def test_small_run_accounts_for_every_250() -> None:
    args = argparse.Namespace(smtp_messages=40, smtp_rounds=1, smtp_clients=4, smtp_kb=2, smtp_card_every=10,
                              smtp_workers=1)
    result = smtp.run(args)
    accounting = result["accounting"]
    assert result["accounting_exact"], accounting
    # 16 warm-up + 40 timed relay messages; one in ten (by position in each batch) carries a card
    assert accounting["accepted_250"] == 56 and accounting["other_replies"] == {}
    assert accounting["quarantine_items"] == 6 and accounting["sink_receipts"] == 50
    for side in ("anchor_plain_aiosmtpd", "dlp_relay"):
        assert result[side]["msgs_per_s"] > 0 and len(result[side]["rounds"]) == 1
    assert result["dlp_relay"]["cpu_ms_per_msg"]["relay"] > 0
    assert "ratio" in smtp.format_text(result)
