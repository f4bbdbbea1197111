// Microphone capture for Vocalis: mono PCM16 at 24 kHz in fixed-size chunks.
// Runs in the AudioWorklet thread. When the AudioContext runs at another rate (sampleRate is
// the worklet global), it resamples by linear interpolation after a short moving-average
// low-pass, which is enough for speech recognition.
const TARGET_RATE = 24000;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const chunkMs = (options.processorOptions && options.processorOptions.chunkMs) || 40;
    this.chunk = new Int16Array((TARGET_RATE * chunkMs) / 1000);
    this.filled = 0;
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.pos = 0; // fractional read position into the pending input
    this.pending = new Float32Array(0);
    this.taps = Math.max(1, Math.round(this.step)); // low-pass width when downsampling
    this.history = new Float32Array(this.taps - 1);
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const channel = input[0];
    if (this.step === 1) {
      this.push(channel);
      return true;
    }
    // moving average over `taps` samples (history carried between blocks)
    const joined = new Float32Array(this.history.length + channel.length);
    joined.set(this.history);
    joined.set(channel, this.history.length);
    const smoothed = new Float32Array(channel.length);
    for (let i = 0; i < channel.length; i++) {
      let sum = 0;
      for (let k = 0; k < this.taps; k++) sum += joined[i + k];
      smoothed[i] = sum / this.taps;
    }
    this.history = joined.slice(joined.length - (this.taps - 1));
    // linear interpolation at the target rate
    const data = new Float32Array(this.pending.length + smoothed.length);
    data.set(this.pending);
    data.set(smoothed, this.pending.length);
    const out = [];
    while (this.pos + 1 < data.length) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      out.push(data[i] * (1 - frac) + data[i + 1] * frac);
      this.pos += this.step;
    }
    const consumed = Math.floor(this.pos);
    this.pending = data.slice(consumed);
    this.pos -= consumed;
    this.push(out);
    return true;
  }

  push(samples) {
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      this.chunk[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.chunk.length) {
        const copy = this.chunk.slice();
        this.port.postMessage(copy.buffer, [copy.buffer]);
        this.filled = 0;
      }
    }
  }
}

registerProcessor("vocalis-capture", CaptureProcessor);
