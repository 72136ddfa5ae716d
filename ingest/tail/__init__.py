"""``ct-ingest tail``: keep the index minutes behind CloudTrail.

Two producers for the same engine as the backfill (``ingest.engine``), in
:mod:`ingest.tail.polling` and :mod:`ingest.tail.sqs`; :mod:`ingest.tail.config` holds their
settings and health, :mod:`ingest.tail.wiring` plugs them into a run (``ingest.runner``):

- **polling**: per account/region prefix, resume from the newest settled key in the ledger (so
  a tail started after a backfill with the same state picks up where it ended), rewind a window
  (CloudTrail files arrive out of key order and up to ~15 minutes late), and list each day from
  there to today with ``StartAfter``; the ledger makes the overlap free. Accounts and regions
  are discovered again every ``rediscover_seconds``.
  A prefix with nothing settled yet starts at ``TailConfig.since`` (``--since``; by default a
  day before start-up), never earlier; where the ledger has a watermark, the watermark wins.
- **SQS**: S3 event notifications (direct, SNS-wrapped, EventBridge, or CloudTrail's own SNS
  delivery notice) name the objects; a message is deleted only once every object it names is
  settled, its visibility is extended while they are processed, and a message that cannot be
  understood is left for the queue's redrive policy. Several processes can share one queue
  (a fleet of workers fed by ``ct-ingest enqueue``, whose messages carry the objects' sizes and
  ETags, so no HEAD is sent for them); at the end of a run what is settled is deleted (in
  batches of ten) and what is held is released, and ``exit_when_idle`` ends a run once the
  queue has stayed empty that long.
  Every SQS call and every HEAD goes through the source's retry policy. A notified object that
  is gone or unreadable (a terminal error on HEAD) goes to the fetch stage like any other, which
  dead-letters it and settles it as failed, so its message is deleted; an object S3 does not
  answer for within the retry deadline leaves its message on the queue, to come back later.
"""

from ingest.tail.config import Health, TailConfig, parse_since
from ingest.tail.polling import poller
from ingest.tail.sqs import SqsConsumer, notification_bodies, parse_notification
from ingest.tail.wiring import open_tail

__all__ = [
    "Health",
    "SqsConsumer",
    "TailConfig",
    "notification_bodies",
    "open_tail",
    "parse_notification",
    "parse_since",
    "poller",
]
