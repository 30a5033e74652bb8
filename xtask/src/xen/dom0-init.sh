#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /run
ln -s /run /var/run; mkdir -p /run/xen /run/xenstored
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs loop xen-blkback xen-netback; do insmod /mod/$m.ko; done
# No IPv6 on the vif: its router solicitations and reports would be
# frames the guest's tests did not ask for.
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
ip link set lo up
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid
xen-init-dom0 >/dev/null
xenconsoled --log=guest --log-dir=/var/log/xen
echo "harness: toolstack up at $(cut -d' ' -f1 /proc/uptime) s"
# dom0's userland under nested TCG is not fully reliable (see run_domu in
# xtask/src/xen/domu.rs): every xl call is bounded, a failed detach is tried
# again, and a watchdog reports and ends a run that is still going after
# 200 s (a whole run takes about 15; /watchdog may name a longer limit).
up() { cut -d' ' -f1 /proc/uptime; }
wd=$(cat /watchdog 2>/dev/null || echo 200)
(
  sleep "$wd"
  [ -e /run/done ] && exit 0
  echo "harness: watchdog: still waiting at $(up) s"
  cat /run/timeline 2>/dev/null; ps
  timeout 20 xl destroy rk
  sleep 60
  [ -e /run/done ] && exit 0
  echo "harness: watchdog: powering off at $(up) s"
  cat /var/log/xen/guest-rk.log 2>/dev/null
  poweroff -f
) &
timeout 60 xl create /domu.cfg
echo "harness: xl create rc=$? at $(up) s" >>/run/timeline
# The guest's domain id (empty if it never appeared).
rk_domid() {
  for t in 1 2 3 4 5 6 7 8 9 10; do
    d=$(timeout 10 xl domid rk 2>/dev/null) && [ -n "$d" ] && { echo "$d"; return; }
    sleep 1
  done
}
# Detach the second disk when the guest asks (blk::detach_gives_errors).
(
  d=$(rk_domid); [ -n "$d" ] || exit 0
  while [ "$(xenstore-read /local/domain/$d/data/detach 2>/dev/null)" != now ]; do
    xenstore-exists /local/domain/$d || exit 0; sleep 1
  done
  for try in 1 2 3; do
    t0=$(up)
    timeout 30 xl block-detach rk xvdb; rc=$?
    echo "harness: block-detach xvdb rc=$rc from $t0 to $(up) s (try $try)" >>/run/timeline
    [ $rc = 0 ] && break
  done
) &
# The guest's requests about its vif: dom0's end to the MTU it names in
# data/vif-mtu (net::scatter_gather; the answer is ip's status in
# data/vif-mtu-set), and a detach when data/netdetach says now
# (net::detach_gives_errors, or /peer.sh after its session).
(
  d=$(rk_domid); [ -n "$d" ] || exit 0
  mtu=""
  while xenstore-exists /local/domain/$d; do
    if [ -z "$mtu" ] && mtu=$(xenstore-read /local/domain/$d/data/vif-mtu 2>/dev/null); then
      ip link set "vif$d.0" mtu "$mtu"; rc=$?
      echo "harness: vif$d.0 mtu $mtu rc=$rc at $(up) s" >>/run/timeline
      xenstore-write /local/domain/$d/data/vif-mtu-set "$rc"
    fi
    if [ "$(xenstore-read /local/domain/$d/data/netdetach 2>/dev/null)" = now ]; then
      for try in 1 2 3; do
        t0=$(up)
        timeout 30 xl network-detach rk 0; rc=$?
        echo "harness: network-detach 0 rc=$rc from $t0 to $(up) s (try $try)" >>/run/timeline
        [ $rc = 0 ] && break
      done
      exit 0
    fi
    sleep 1
  done
) &
# dom0's side of a network test, if the image has one (xtask writes it).
if [ -x /peer.sh ]; then
  ( d=$(rk_domid); [ -n "$d" ] && /peer.sh "$d"; touch /run/peer-done ) &
fi
# Wait for the guest to go, logging each state change (xl's flags:
# r b p s c d = running blocked paused shutdown crashed dying) to
# /run/timeline, printed once the guest is gone: dom0 lines written while
# the guest prints share the serial line with Xen's `(d1)` lines. A domain
# that has shut itself down but is still listed 20 s later was not reaped
# by the toolstack: say so and destroy it (the test still asks for `s`).
i=0; last=""; held=0
while [ $i -lt $((wd + 40)) ]; do
  s=$(timeout 10 xl list rk 2>/dev/null | awk 'NR==2{print $5}')
  [ -z "$s" ] && break
  if [ "$s" != "$last" ]; then echo "harness: rk state $s at $(up) s" >>/run/timeline; last=$s; fi
  case "$s" in
    *s*|*c*|*d*) held=$((held+1))
      if [ $held -ge 20 ]; then
        echo "harness: rk not reaped 20 s after state $s; xl destroy" >>/run/timeline
        timeout 20 xl destroy rk; held=0
      fi ;;
  esac
  sleep 1; i=$((i+1))
done
# A peer may still be checking what the guest left behind (xen/sp.rs
# reads its disk): wait for it, 60 s at most.
if [ -x /peer.sh ]; then
  t=0; while [ ! -e /run/peer-done ] && [ $t -lt 60 ]; do sleep 1; t=$((t+1)); done
  [ -e /run/peer-done ] || echo "harness: peer still running 60 s after the guest" >>/run/timeline
fi
touch /run/done
cat /run/timeline 2>/dev/null
if [ -z "$s" ]; then echo "harness: guest gone after $i s"; else echo "harness: guest still listed after $i s"; fi
cat /var/log/xen/guest-rk.log 2>/dev/null
echo "harness: disk sector 0: $(dd if=/disk.img bs=32 count=1 2>/dev/null | tr -c 'A-Z0-9-' '.')"
echo "harness: disk sector 2: $(dd if=/disk.img bs=512 skip=2 count=1 2>/dev/null | head -c 23)"
echo "harness: done"
poweroff -f
