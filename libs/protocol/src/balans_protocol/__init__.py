"""balans-protocol: the concentrator wire format, its reference client, and the NATS contracts.

- ``frames``: frame types, :func:`~balans_protocol.frames.encode_frame`,
  :func:`~balans_protocol.frames.decode_frame`, :class:`~balans_protocol.frames.FrameSplitter`
- ``records``: UPLOAD records (pulse, temperature, status, event, raw M-Bus telegram)
- ``auth``: HMAC-SHA256 tags and the handshake's session key
- ``errors``: :class:`~balans_protocol.errors.ProtocolError` and the NACK reason codes
- ``subjects``, ``messages``, ``streams``: NATS subjects, JSON message models, JetStream streams
- ``client``: the reference concentrator (:class:`~balans_protocol.client.ConcentratorClient`)
- ``framing``: reading whole frames from an asyncio stream (client and server)
- ``commands``: :func:`~balans_protocol.commands.request_command`, a downlink command over NATS

The wire format is specified in docs/protocol.md.
"""
