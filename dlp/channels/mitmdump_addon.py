"""`mitmdump -s dlp/channels/mitmdump_addon.py --set dlp_config=/etc/dlp/dlp.toml`: the DLP inside an
operator's own mitmproxy. This file only names the addon; everything it builds lives in
dlp.channels.web_mitmdump, which survives mitmproxy's script reloads."""

from dlp.channels.web_mitmdump import MitmdumpDlp

addons = [MitmdumpDlp()]
