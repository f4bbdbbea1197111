"""Timeline tests of turn-taking with fake providers and virtual time (§4, §11, §12)."""

from __future__ import annotations

from tests.harness import Harness, silence, tone
from vocalis.settings import Settings


async def test_nothing_is_sent_before_the_first_message(harness: Harness) -> None:
    await harness.wait(2)
    assert harness.transport.events == []


async def test_session_update_then_ready_then_greeting(harness: Harness) -> None:
    await harness.start({"greeting": "Hi! How can I help?"})
    await harness.wait(3)
    types = harness.transport.types()
    assert types[:3] == ["session.updated", "session.ready", "reply.started"]
    assert types[-2:] == ["transcript.agent", "reply.done"]
    deltas = [e["delta"] for e in harness.transport.of("transcript.agent.delta")]
    assert deltas == ["Hi! ", "How ", "can ", "I ", "help?"]
    assert harness.transport.last("transcript.agent")["text"] == "Hi! How can I help?"
    assert harness.transport.last("reply.done")["status"] == "completed"


async def test_user_turn_yields_transcript_and_reply(harness: Harness) -> None:
    await harness.start({"input": {"turn_detection": {"type": "server_vad"}}})
    await harness.speak(1200, then_silence_ms=1000)
    await harness.until("reply.done")
    t = harness.transport
    types = t.types()
    user = [x for x in types if x.startswith(("input.", "transcript.user"))]
    assert user[0] == "input.speech.started"
    assert user[-2:] == ["input.speech.stopped", "transcript.user"]
    assert "transcript.user.delta" in user
    text = t.last("transcript.user")["text"]
    assert text.startswith("speech ") and text.endswith(" ms.")
    assert types.index("transcript.user") < types.index("reply.started")
    assert t.last("transcript.agent")["text"] == f"You said: {text}"
    # the reply is told with its own ids, the user turn with its item id
    assert t.last("transcript.user")["item_id"].startswith("msg_")
    assert t.last("reply.started")["reply_id"].startswith("resp_")


async def test_turn_ends_at_min_silence_on_audio_timeline(harness: Harness) -> None:
    await harness.start({"input": {"turn_detection": {"min_silence": 600, "max_silence": 2000}}})
    await harness.speak(800)
    await harness.stream(silence(500))
    assert not harness.transport.of("input.speech.stopped")
    await harness.stream(silence(200))
    assert harness.transport.of("input.speech.stopped")


async def test_min_silence_can_count_from_where_the_voice_faded() -> None:
    """With ``turn_quiet_backdate_ms``, a fading tail that the VAD still calls speech is part
    of the pause (from its level, 26 dB under the turn's loudest frame), up to that long."""
    settings = Settings(
        providers="fake", legacy_ready_timeout_seconds=0, turn_quiet_backdate_ms=192
    )
    harness = Harness(settings)
    await harness.start({"input": {"turn_detection": {"min_silence": 600, "max_silence": 2000}}})
    await harness.speak(800)
    await harness.stream(tone(400, amplitude=0.015))  # the fake VAD: speech, but faded
    await harness.stream(silence(352))  # 192 + 352 ms counted as quiet
    assert not harness.transport.of("input.speech.stopped")  # (a tail heard as silence: 752)
    await harness.stream(silence(96))  # 640 ms counted, 448 ms after the VAD's edge
    assert harness.transport.of("input.speech.stopped")
    await harness.close()


async def test_gap_in_streaming_counts_as_silence(harness: Harness) -> None:
    await harness.start()
    await harness.speak(800)
    assert not harness.transport.of("input.speech.stopped")
    await harness.wait(4)  # the client stops streaming altogether (§10.2)
    assert harness.transport.of("input.speech.stopped")
    assert harness.transport.of("reply.done")


async def test_short_noise_does_not_open_a_turn(harness: Harness) -> None:
    await harness.start()
    await harness.speak(64, then_silence_ms=1500)
    assert not harness.transport.of("input.speech.started")


async def test_timeline_records_turns_with_stage_timings(harness: Harness) -> None:
    await harness.start({"input": {"turn_detection": {"type": "server_vad"}}})
    await harness.speak(900, then_silence_ms=1000)
    await harness.until("reply.done")
    await harness.send({"type": "session.end"})
    timeline = harness.session().timeline()
    assert timeline["ended"] == {
        "reason": "user_initiated",
        "public_reason": "client_end",
        "duration_seconds": timeline["ended"]["duration_seconds"],
    }
    (turn,) = timeline["turns"]
    assert turn["trigger"] == "user_speech" and turn["status"] == "completed"
    assert turn["user_transcript"] == harness.transport.last("transcript.user")["text"]
    assert turn["agent_text"] == harness.transport.last("transcript.agent")["text"]
    timings = turn["timings"]
    # server_vad ends the turn at min_silence (800 ms) after the last speech frame
    assert 700 <= timings["turn_decision_ms"] <= 1000
    assert timings["stt_final_ms"] <= timings["turn_decision_ms"]
    assert timings["turn_decision_ms"] <= timings["first_audio_sent_ms"]
    stages = ("llm_first_token_ms", "first_piece_ms", "tts_first_audio_ms", "first_audio_sent_ms")
    assert [timings[s] for s in stages] == sorted(timings[s] for s in stages)
    assert "tool_calls" not in turn


async def test_recording_is_stereo_user_left_agent_right() -> None:
    import io
    import wave

    import numpy as np

    from vocalis.settings import Settings

    h = Harness(settings=Settings(providers="fake", recording=True, legacy_ready_timeout_seconds=0))
    await h.start({"greeting": "Hello there."})
    await h.wait(1.5)  # the greeting plays; the user is silent
    await h.speak(800, then_silence_ms=200)
    await h.send({"type": "session.end"})
    record = h.session().record()
    assert record.recording is not None
    with wave.open(io.BytesIO(record.recording)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 24_000, 2)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    first_second = pcm[:24_000]
    assert np.abs(first_second[:, 1]).max() > 3000  # the agent's greeting on the right
    assert np.abs(first_second[:, 0]).max() < 100  # a silent user on the left
    assert np.abs(pcm[:, 0]).max() > 3000  # the user's speech arrives later on the left
