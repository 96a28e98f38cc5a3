"""The closed vocabularies of legal assistance: kinds, bases, offences, outcomes and their codes.

Sources: UNCAC arts. 15-25 and 46, and the UNODC note CAC/COSP/2019/7 (see
shared/reference/domain.md). Config files, intake and the ledger all speak these words.
"""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"


class Kind(StrEnum):
    MLA = "mla"
    EXTRADITION = "extradition"
    ASSET_TRACING = "asset_tracing"
    ASSET_FREEZING = "asset_freezing"
    ASSET_SEIZURE = "asset_seizure"
    CONFISCATION = "confiscation"
    ASSET_RETURN = "asset_return"

    @property
    def is_asset_recovery(self) -> bool:
        return self not in (Kind.MLA, Kind.EXTRADITION)


class LegalBasis(StrEnum):
    UNCAC = "uncac"
    UNTOC = "untoc"
    BILATERAL_TREATY = "bilateral_treaty"
    REGIONAL_INSTRUMENT = "regional_instrument"
    EU_INSTRUMENT = "eu_instrument"
    RECIPROCITY = "reciprocity"


class OffenceCategory(StrEnum):
    """UNCAC chapter III offences (arts. 15-25)."""

    BRIBERY = "bribery"  # arts. 15, 16, 21
    EMBEZZLEMENT = "embezzlement"  # arts. 17, 22
    TRADING_IN_INFLUENCE = "trading_in_influence"  # art. 18
    ABUSE_OF_FUNCTIONS = "abuse_of_functions"  # art. 19
    ILLICIT_ENRICHMENT = "illicit_enrichment"  # art. 20
    MONEY_LAUNDERING = "money_laundering"  # art. 23
    CONCEALMENT = "concealment"  # art. 24
    OBSTRUCTION = "obstruction"  # art. 25


class Channel(StrEnum):
    CENTRAL_AUTHORITY = "central_authority"
    DIRECT = "direct"
    DIPLOMATIC = "diplomatic"
    INTERPOL = "interpol"
    INFORMAL_FIRST = "informal_first"


class Outcome(StrEnum):
    """What the holder of a hop decided."""

    FORWARDED = "forwarded"
    RETURNED = "returned"
    REFUSED = "refused"
    POSTPONED = "postponed"  # UNCAC 46(25): an outcome of its own, not a refusal
    EXECUTED = "executed"
    PARTIALLY_EXECUTED = "partially_executed"


class RefusalGround(StrEnum):
    NONCONFORMING_REQUEST = "nonconforming_request"  # 46(21)(a)
    ESSENTIAL_INTERESTS = "essential_interests"  # 46(21)(b)
    DOMESTIC_PROHIBITION = "domestic_prohibition"  # 46(21)(c)
    CONTRARY_TO_LEGAL_SYSTEM = "contrary_to_legal_system"  # 46(21)(d)
    NO_DUAL_CRIMINALITY = "no_dual_criminality"  # 46(9)(b)
    DE_MINIMIS = "de_minimis"  # 46(9)(c)
    PRESCRIPTION_EXPIRED = "prescription_expired"
    NE_BIS_IN_IDEM = "ne_bis_in_idem"
    IMMUNITY = "immunity"
    AMNESTY = "amnesty"
    POLITICAL_OFFENCE = "political_offence"
    MILITARY_OFFENCE = "military_offence"
    NATIONALITY = "nationality"
    REFUGEE_STATUS = "refugee_status"
    FUNDAMENTAL_RIGHTS = "fundamental_rights"
    NOT_PARTY_TO_CONVENTION = "not_party_to_convention"
    BANK_SECRECY = "bank_secrecy"  # prohibited by UNCAC 46(8)
    FISCAL_OFFENCE = "fiscal_offence"  # prohibited by UNCAC 46(22)

    @property
    def prohibited_by_uncac(self) -> bool:
        return self in (RefusalGround.BANK_SECRECY, RefusalGround.FISCAL_OFFENCE)


class DelayCause(StrEnum):
    INCOMPLETE_REQUEST = "incomplete_request"
    MISSING_TRANSLATION = "missing_translation"
    WRONG_AUTHORITY = "wrong_authority"
    WRONG_CHANNEL = "wrong_channel"
    AWAITING_CLARIFICATION = "awaiting_clarification"  # stops the step clock
    DIPLOMATIC_TRANSIT = "diplomatic_transit"
    BACKLOG = "backlog"
    NO_ACKNOWLEDGEMENT = "no_acknowledgement"
    ASSET_TRACING = "asset_tracing"
    OWNER_CHALLENGE = "owner_challenge"
    CONFIDENTIALITY_CONCERN = "confidentiality_concern"


class Role(StrEnum):
    """Who an escalation rung notifies; resolved to apprise tags by the country's contacts."""

    HOLDER = "holder"  # the desk of the authority holding the hop
    HEAD = "head"  # the head of that authority's unit
    COORDINATOR = "coordinator"  # the country's central coordination


class RungKind(StrEnum):
    REMINDER = "reminder"
    OVERDUE = "overdue"
    ESCALATION = "escalation"


class PrescriptionEffect(StrEnum):
    """Named rules by which requests abroad suspend or interrupt the limitation period."""

    US_3292 = "us-3292"  # 18 U.S.C. § 3292: suspension while evidence is sought abroad
    IT_159_3TER = "it-159-3ter"  # c.p. art. 159(1) n. 3-ter: letter rogatory suspends, max 6 m
    DE_78C = "de-78c"  # StGB § 78c(1) Nr. 12: request abroad interrupts; cap § 78c(3)
    FR_9 = "fr-9"  # CPP arts. 9-1 to 9-3: discovery start, interruption, suspension


class RequestMaker(StrEnum):
    """Who made a request abroad: StGB § 78c(1) Nr. 12 counts only a judge's request."""

    JUDGE = "judge"
    PROSECUTOR = "prosecutor"
    POLICE = "police"


class PrescriptionStart(StrEnum):
    OFFENCE_DATE = "offence_date"
    DISCOVERY_DATE = "discovery_date"
