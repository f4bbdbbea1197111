"""Python client of a Vocalis (or AssemblyAI Voice Agent API) server.

Example: send a WAV file as the user's speech, answer tool calls with a Python function, and
collect the agent's audio::

    import asyncio
    import base64
    from vocalis.client import connect, wav_to_pcm16

    def get_time(city: str) -> str:
        \"\"\"Current local time in a city.\"\"\"
        return "10:42"

    async def main() -> None:
        client = await connect(
            "ws://127.0.0.1:8000/v1/ws",
            api_key=None,  # open development mode; else an API key or a temporary token
            session={"system_prompt": "Be brief.", "output": {"voice": "ivy"}},
            tools={"get_time": get_time},  # schema derived from the signature and docstring
        )
        sender = asyncio.create_task(client.stream_audio(wav_to_pcm16("question.wav")))
        agent_audio = bytearray()
        async for event in client.events():  # plain dicts, contract §8
            if event["type"] == "transcript.user":
                print("You:", event["text"])
            elif event["type"] == "reply.audio":
                agent_audio += base64.b64decode(event["data"])
            elif event["type"] == "transcript.agent":
                print("Agent:", event["text"])
            elif event["type"] == "reply.done":
                break
        sender.cancel()
        await client.end()

    asyncio.run(main())

A dropped connection is resumed transparently (``session.resume`` with the resume token);
``session.error`` codes that end the session raise :class:`SessionError` with a readable message.
"""

from vocalis.client.audio_io import WavRecorder, wav_to_pcm16
from vocalis.client.connection import (
    DEFAULT_URL,
    SAMPLE_RATE,
    Event,
    EventHandler,
    VoiceAgentClient,
    connect,
)
from vocalis.client.errors import ConnectionLost, SessionError, describe_error
from vocalis.client.tools import load_tools, run_tool, tool_definition, tool_definitions

__all__ = [
    "DEFAULT_URL",
    "SAMPLE_RATE",
    "ConnectionLost",
    "Event",
    "EventHandler",
    "SessionError",
    "VoiceAgentClient",
    "WavRecorder",
    "connect",
    "describe_error",
    "load_tools",
    "run_tool",
    "tool_definition",
    "tool_definitions",
    "wav_to_pcm16",
]
