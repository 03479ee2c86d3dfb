"""api provisioning: retiring sites and buildings, concentrator key rotation, radiator keys

Revision ID: api_0003_provisioning
Revises: api_0002
Create Date: 2026-12-06 17:00:00

- ``sites.retired_on`` / ``buildings.retired_on``: a retired site or building keeps its
  history (readings, invoices) but is out of service; a retired building's concentrators
  are no longer recognised by ingest.
- ``concentrators.previous_key_ciphertext`` / ``previous_key_until``: after a key
  rotation the old key stays valid until ``previous_key_until`` (the overlap window), so
  a concentrator in the field is never cut off while it is re-keyed.
- ``radiators`` get a unique (flat, riser): a flat's radiator on a riser is named by
  that pair in import documents, so an import can find it again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api_0003_provisioning"
down_revision: str | Sequence[str] | None = "api_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sites", sa.Column("retired_on", sa.Date()))
    op.add_column("buildings", sa.Column("retired_on", sa.Date()))
    op.add_column("concentrators", sa.Column("previous_key_ciphertext", sa.LargeBinary()))
    op.add_column("concentrators", sa.Column("previous_key_until", sa.DateTime(timezone=True)))
    op.create_unique_constraint("uq_radiators_flat_riser", "radiators", ["flat_id", "riser_id"])


def downgrade() -> None:
    op.drop_constraint("uq_radiators_flat_riser", "radiators", type_="unique")
    op.drop_column("concentrators", "previous_key_until")
    op.drop_column("concentrators", "previous_key_ciphertext")
    op.drop_column("buildings", "retired_on")
    op.drop_column("sites", "retired_on")
