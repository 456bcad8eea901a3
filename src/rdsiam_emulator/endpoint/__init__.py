"""asyncio endpoints: TLS termination, protocol machines, backend sessions and the byte relay.

Protocol parsing lives in ``rdsiam_emulator.protocols``; this package only moves bytes and decides
what to do with the events.
"""
