"""Silero VAD (v6 ONNX) through onnxruntime, shared by every session of the node.

Listening is what every session does all the time, so its cost per session sets how many idle
callers a node can hold. Two things keep it small:

* **Digital silence costs nothing.** A frame whose peak is below :data:`SILENCE_PEAK` (a few
  16-bit steps: a muted microphone, a client streaming zeros) has speech probability 0 by
  definition; the model is not run and no thread is woken. The recurrent state is left as it
  was and the context becomes zeros, which is what the model would have seen.
* **One model call for many sessions.** Frames that need the model go to one
  :class:`~vocalis.providers.workers.InferenceWorker`, which runs the frames of every session
  waiting at that moment as one batch (Silero takes a batch dimension: input ``(B, 576)``,
  state ``(2, B, 128)``): one ONNX call instead of one per session, one thread instead of a
  thread hop per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vocalis.providers.base import Audio
from vocalis.providers.embedded._threads import onnx_session
from vocalis.providers.scheduling import Priority
from vocalis.providers.workers import InferenceWorker

FRAME_SAMPLES = 512  # 32 ms at 16 kHz, the only frame size the 16 kHz model accepts
CONTEXT_SAMPLES = 64  # the model sees the tail of the previous frame before each new frame
SILENCE_PEAK = 1e-4  # about 3 steps of 16-bit audio: below this a frame is digital silence
MAX_BATCH = 64  # frames of this many sessions per model call at most
_SAMPLE_RATE = np.array(16_000, dtype=np.int64)

Floats = npt.NDArray[np.float32]


class SileroVADStream:
    """One session's recurrent state; frames must arrive in order (one call at a time)."""

    def __init__(self, vad: SileroVAD) -> None:
        self._vad = vad
        self.state: Floats = np.zeros((2, 1, 128), dtype=np.float32)
        self.context: Floats = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)

    async def probabilities(self, audio: Audio) -> list[float]:
        frames = len(audio) // FRAME_SAMPLES
        if not frames:
            return []
        samples = np.asarray(audio[: frames * FRAME_SAMPLES], dtype=np.float32)
        grid = samples.reshape(frames, FRAME_SAMPLES)
        silent = np.abs(grid).max(axis=1) < SILENCE_PEAK
        if silent.all():
            self.context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)
            self._vad.silent_frames += frames
            return [0.0] * frames
        job = _Job(self, grid, silent)
        return await self._vad.worker.submit(job, Priority.TURN_DECISION, batch_key="vad")


@dataclass
class _Job:
    stream: SileroVADStream
    frames: Floats  # (k, 512)
    silent: npt.NDArray[np.bool_]  # (k,)


class SileroVAD:
    """Shared model and worker; each session opens its own :class:`SileroVADStream`."""

    frame_samples = FRAME_SAMPLES

    def __init__(self, model_path: Path) -> None:
        self.session = onnx_session(model_path, threads=1)
        self.worker: InferenceWorker[_Job, list[float]] = InferenceWorker(
            "vad", self._run_batch, max_batch=MAX_BATCH
        )
        self.silent_frames = 0  # frames answered without the model
        self.model_frames = 0  # frames the model ran on

    def open_stream(self) -> SileroVADStream:
        return SileroVADStream(self)

    async def aclose(self) -> None:
        self.worker.close()

    # ------------------------------------------------------------------ worker thread
    def _run_batch(self, jobs: list[_Job]) -> list[list[float]]:
        """Frame step by frame step, one model call for the sessions that have a frame there.

        A stream appearing twice (it should not: a session awaits each call) is handled in a
        later round so its frames stay in order.
        """
        results: dict[int, list[float]] = {}
        pending = list(enumerate(jobs))
        while pending:
            seen: set[int] = set()
            round_: list[tuple[int, _Job]] = []
            later: list[tuple[int, _Job]] = []
            for index, job in pending:
                (later if id(job.stream) in seen else round_).append((index, job))
                seen.add(id(job.stream))
            for index, probs in zip(
                [i for i, _ in round_], self._run_round([j for _, j in round_]), strict=True
            ):
                results[index] = probs
            pending = later
        return [results[i] for i in range(len(jobs))]

    def _run_round(self, jobs: list[_Job]) -> list[list[float]]:
        probs = [[0.0] * len(job.frames) for job in jobs]
        steps = max(len(job.frames) for job in jobs)
        for step in range(steps):
            live = [
                i for i, job in enumerate(jobs) if step < len(job.frames) and not job.silent[step]
            ]
            for job in jobs:
                if step < len(job.frames) and job.silent[step]:
                    job.stream.context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)
            if not live:
                continue
            window = np.concatenate(
                [
                    np.concatenate([jobs[i].stream.context, jobs[i].frames[step : step + 1]], 1)
                    for i in live
                ]
            )
            state = np.concatenate([jobs[i].stream.state for i in live], axis=1)
            output, new_state = self.session.run(
                None, {"input": window, "state": state, "sr": _SAMPLE_RATE}
            )
            for row, i in enumerate(live):
                stream = jobs[i].stream
                stream.state = np.ascontiguousarray(new_state[:, row : row + 1, :])
                stream.context = window[row : row + 1, -CONTEXT_SAMPLES:].copy()
                probs[i][step] = float(output[row, 0])
            self.model_frames += len(live)
        self.silent_frames += sum(int(job.silent.sum()) for job in jobs)
        return probs
