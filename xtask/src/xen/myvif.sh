#!/bin/sh
# A minimal vif hotplug script (Debian's vif-bridge needs bash and a
# bridge): a routed link, dom0's end of the vif is 10.0.5.1/24.
case "$1" in
online|add)
  ip link set "$vif" up
  ip addr add 10.0.5.1/24 dev "$vif"
  xenstore-write "$XENBUS_PATH/hotplug-status" connected
  ;;
offline|remove)
  ip link set "$vif" down 2>/dev/null
  ;;
esac
exit 0
