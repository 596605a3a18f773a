#!/bin/sh
# dlp transparent web proxy with iptables (hosts without nftables). Same effect as dlp-transparent.nft:
# redirect the agents' TCP 80/443 to dlp's proxy ([proxy] mode = "transparent") and drop UDP/443 (QUIC)
# so browsers fall back to TCP. Run as root; `./dlp-transparent.iptables.sh remove` undoes it.
set -eu

AGENTS="${AGENTS:-10.20.0.0/16}"
PROXY_PORT="${PROXY_PORT:-8080}"
DLP_USER="${DLP_USER:-dlp}"
ACTION="${1:-add}"

if [ "$ACTION" = remove ]; then OP=-D; else OP=-A; fi

for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null 2>&1 || continue
    src="$AGENTS"
    [ "$ipt" = ip6tables ] && src="${AGENTS6:-::/0}"
    # Agents' networks routed through this host.
    "$ipt" -t nat "$OP" PREROUTING -s "$src" -p tcp -m multiport --dports 80,443 -j REDIRECT --to-ports "$PROXY_PORT"
    "$ipt" "$OP" FORWARD -s "$src" -p udp --dport 443 -j DROP
    # This host's own traffic, except the proxy's upstream connections.
    "$ipt" -t nat "$OP" OUTPUT -p tcp -m multiport --dports 80,443 -m owner ! --uid-owner "$DLP_USER" \
        -m addrtype ! --dst-type LOCAL -j REDIRECT --to-ports "$PROXY_PORT"
    "$ipt" "$OP" OUTPUT -p udp --dport 443 -m owner ! --uid-owner "$DLP_USER" -j DROP
done

# Routing for the agents: forwarding on, and the kernel must not drop redirected packets.
if [ "$ACTION" != remove ]; then
    sysctl -q -w net.ipv4.ip_forward=1
    sysctl -q -w net.ipv4.conf.all.send_redirects=0
fi
