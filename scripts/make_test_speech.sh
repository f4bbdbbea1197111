#!/usr/bin/env bash
# Regenerates the espeak-ng synthesized test utterances in tests/data/ (16 kHz mono PCM16 WAV).
# Needs espeak-ng and sox (Debian: apt-get install -y espeak-ng sox). Output was made with
# espeak-ng 1.51 and sox 14.4.2; other versions give slightly different samples.
set -euo pipefail

out_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/data"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

synth() {
  local name="$1" text="$2"
  # en-us voice, 160 words/min; espeak-ng writes 22050 Hz, sox converts without dither and
  # pads 0.2 s of silence on both sides.
  espeak-ng -v en-us -s 160 -w "$tmp/raw.wav" "$text"
  sox -D "$tmp/raw.wav" -r 16000 -c 1 -b 16 -e signed-integer "$out_dir/$name" pad 0.2 0.2
}

synth tts_close_today.wav "what time do you close today"
synth tts_uh_huh.wav "uh huh"
synth tts_weather_paris.wav "what is the weather in Paris"
synth tts_wait_actually.wav "wait actually I already sent it"
synth tts_okay.wav "okay"
