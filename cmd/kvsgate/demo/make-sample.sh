#!/bin/sh
# Makes sample.mkv, the demo stream's clip: 10 s of H.264 (640x360, 25 fps,
# B-frames, a key frame every second) and AAC (48 kHz stereo), one Matroska
# cluster per second starting at each key frame. Run once with Debian's ffmpeg 5.1.
set -e
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25" \
  -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000" \
  -t 10 \
  -c:v libx264 -preset medium -profile:v main -pix_fmt yuv420p -g 25 -keyint_min 25 -sc_threshold 0 -bf 2 -b:v 1000k -maxrate 1200k -bufsize 1000k \
  -c:a aac -b:a 64k -ac 2 \
  -cluster_time_limit 5000 -cluster_size_limit 5000000 \
  -metadata title="kvsgate demo" \
  sample.mkv
