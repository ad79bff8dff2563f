# Sourced by the screenshot scripts, after they set $out: builds the release
# binary unless $TWINHEAD_BIN names one, starts Xvfb on display $1 and the
# workbench (a fresh HOME so it starts as on a first launch) in a 1600×1000
# window, and defines `shot NAME [SECONDS]` (saves $out/NAME.png after
# waiting) and `click X Y`. Needs Debian's xvfb, xdotool, imagemagick,
# libgl1-mesa-dri; cleans up on exit.
bin=${TWINHEAD_BIN:-target/release/twinhead}
[ -x "$bin" ] || cargo build --release --locked
mkdir -p "$out"
home=$(mktemp -d)
Xvfb "$1" -screen 0 1600x1000x24 -nolisten tcp & xvfb=$!
app=
cleanup() { [ -n "$app" ] && kill "$app" 2>/dev/null; kill "$xvfb" 2>/dev/null; rm -rf "$home"; }
trap cleanup EXIT
export DISPLAY=$1
sleep 1
HOME=$home LIBGL_ALWAYS_SOFTWARE=1 "$bin" > "${window_log:-/dev/null}" 2>&1 & app=$!
for _ in $(seq 60); do xdotool search --name '^Twinhead$' > /dev/null 2>&1 && break; sleep 1; done
win=$(xdotool search --name '^Twinhead$' | head -1)
xdotool windowmove "$win" 0 0 windowsize "$win" 1600 1000
shot() { sleep "${2:-2}"; import -window root "$out/$1.png"; echo "saved $out/$1.png"; }
click() { xdotool mousemove --sync "$1" "$2" click 1; }
