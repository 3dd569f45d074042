"""The fault suite: real processes, real signals and a real PostgreSQL, exact counts.

Intervals are shortened through the environment (FAST) so each fault resolves in
seconds: heartbeats every 0.2 s, rescue after 1 s of silence, maintenance every 0.2 s.
"""

FAST = {
    "PGQ_HEARTBEAT_INTERVAL": "0.2",
    "PGQ_RESCUE_AFTER": "1",
    "PGQ_MAINTENANCE_INTERVAL": "0.2",
    "PGQ_POLL_INTERVAL": "0.5",
}
