"""Who is calling: the owner a credential stands for, whether it may see every job, and its quotas."""

from __future__ import annotations

from pydantic import BaseModel, Field

from backend.auth.settings import AuthSettings


class Quotas(BaseModel):
    """An owner's limits; each None in an API key's record means the QUOTA_* default."""

    jobs_in_flight: int = Field(ge=1, description="Jobs queued or running at once.")
    images_per_day: int = Field(ge=1, description="Images accepted per UTC day.")
    mb_per_day: int = Field(ge=1, description="Upload megabytes accepted per UTC day.")
    max_upload_mb: int = Field(ge=1, description="The largest single upload.")


class QuotaOverrides(BaseModel):
    """What a key, or `oilspill keys quota OWNER`, changes of the defaults (null: the QUOTA_* setting)."""

    jobs_in_flight: int | None = Field(None, ge=1)
    images_per_day: int | None = Field(None, ge=1)
    mb_per_day: int | None = Field(None, ge=1)
    max_upload_mb: int | None = Field(None, ge=1)

    def before(self, other: QuotaOverrides) -> QuotaOverrides:
        """These overrides, and `other`'s where these leave a quota to the default."""
        mine = self.model_dump()
        return QuotaOverrides.model_validate(
            {
                name: mine[name] if mine[name] is not None else value
                for name, value in other.model_dump().items()
            }
        )

    def over(self, settings: AuthSettings) -> Quotas:
        """These overrides on top of the settings' defaults."""
        return Quotas(
            jobs_in_flight=self.jobs_in_flight or settings.QUOTA_JOBS_IN_FLIGHT,
            images_per_day=self.images_per_day or settings.QUOTA_IMAGES_PER_DAY,
            mb_per_day=self.mb_per_day or settings.QUOTA_MB_PER_DAY,
            max_upload_mb=self.max_upload_mb or settings.QUOTA_MAX_UPLOAD_MB,
        )


class Principal(BaseModel):
    """The authenticated caller. `owner` is what jobs record: an API key's name, or a JWT's subject."""

    owner: str
    admin: bool = False
    quotas: Quotas
    via: str = Field(description='"api-key" or "oidc".')

    def may_open(self, owner: str | None) -> bool:
        """Whether this caller may see a job recorded with `owner` (None: a job made with auth off)."""
        return self.admin or owner == self.owner
