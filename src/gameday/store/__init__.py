"""Where runs, their timelines and events, and the fault ledger persist: SQLite or PostgreSQL.

    store = Store.open(url)          # None: $GAMEDAY_STORE, else sqlite:///.gameday/gameday.db
    store.create_run(run); store.add_samples(run.run_id, batch); store.ledger_add(fault)

Errors: StoreError (runtime), its IncompatibleSchemaError (another schema version), and
InputError for a URL that cannot be used.
"""

from gameday.store._errors import IncompatibleSchemaError, StoreError
from gameday.store._schema import STORE_SCHEMA_VERSION
from gameday.store._store import Lease, Store
from gameday.store._url import (
    DEFAULT_STORE_URL,
    STORE_ENV,
    redact_url,
    resolve_store_url,
    url_secrets,
)

__all__ = [
    "DEFAULT_STORE_URL",
    "STORE_ENV",
    "STORE_SCHEMA_VERSION",
    "IncompatibleSchemaError",
    "Lease",
    "Store",
    "StoreError",
    "redact_url",
    "resolve_store_url",
    "url_secrets",
]
