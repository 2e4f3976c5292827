"""What a party must have before a document for it can be rendered, checked at configuration time.

Each function returns problems naming the party, its role on the document and the
configuration field to set, with the rule that needs it, e.g.
``party "campus_op" (seller): set payment.iban or payment.account_number (EN 16931 BR-61: ...)``.
Renderers call them from :meth:`kwhub.core.adapters.InvoiceRenderer.check_parties`, which
``kwhub config check`` and ``kwhub adapters check`` run for every contract and delivery
route, so a missing field is found before anything is settled or delivered. The rendered
document's own validation finds the same problems again (by rule id) as a last guard.
"""

from __future__ import annotations

from collections.abc import Collection

from kwhub.core.invoice import PartyRef
from kwhub.plugins.erp.peppol_codes import EAS_CODES, gln_ok


def _who(party: PartyRef, role: str) -> str:
    return f'party "{party.id}" ({role})'


def en16931_party_problems(seller: PartyRef, buyer: PartyRef, tax_categories: Collection[str]) -> list[str]:
    """EN 16931 needs: the seller's payment account (BR-61) and, with standard-rated lines,
    a seller tax identifier (BR-S-02); VAT identifiers start with a country code (BR-CO-09)."""
    out: list[str] = []
    if seller.payment is None:
        out.append(f"{_who(seller, 'seller')}: set payment (payment.iban or payment.account_number, "
                   "payment.means_code) so the invoice can say where to pay (EN 16931 BR-61, BG-16)")
    else:
        out += [f"{_who(seller, 'seller')}: payment: {p} (EN 16931 BR-61)" for p in seller.payment.problems()]
    if buyer.payment is not None:
        out += [f"{_who(buyer, 'buyer')}: payment: {p} (EN 16931 BR-61, refunds of credit notes)"
                for p in buyer.payment.problems()]
    if "S" in tax_categories and not seller.tax_id:
        out.append(f"{_who(seller, 'seller')}: set tax_id (and tax_scheme, e.g. VAT or EIN): standard-rated lines "
                   "need the seller's tax identifier (EN 16931 BR-S-02)")
    for party, role in ((seller, "seller"), (buyer, "buyer")):
        if party.tax_id and party.tax_scheme.upper() == "VAT" and not party.tax_id[:2].isalpha():
            out.append(f"{_who(party, role)}: tax_id {party.tax_id!r} with tax_scheme VAT must start with an "
                       "ISO 3166-1 country code (EN 16931 BR-CO-09); use tax_scheme = \"EIN\" (or the scheme it is) "
                       "for a tax number that is not a VAT identifier")
    return out


def endpoint_problems(party: PartyRef, role: str) -> list[str]:
    """Peppol needs an electronic address with a scheme of the EAS code list (R010/R020, CL008)."""
    rule = "PEPPOL-EN16931-R020" if role == "seller" else "PEPPOL-EN16931-R010"
    ep = party.endpoint()
    if ep is None:
        return [f"{_who(party, role)}: set endpoint_id and endpoint_scheme (its Peppol participant id, e.g. "
                f'endpoint_scheme = "0088" for a GLN): an electronic address is required ({rule})']
    scheme, value = ep
    if not scheme:
        return [f"{_who(party, role)}: set endpoint_scheme for endpoint_id {value!r} (a code of the Peppol "
                "Electronic Address Scheme list, e.g. 0088 GLN, 0060 DUNS, 9959 US EIN) (PEPPOL-EN16931-CL008)"]
    if scheme not in EAS_CODES:
        return [f"{_who(party, role)}: endpoint_scheme {scheme!r} is not in the Peppol Electronic Address Scheme "
                "list (PEPPOL-EN16931-CL008; e.g. 0088 GLN, 0060 DUNS, 9959 US EIN)"]
    if not value.strip():
        return [f"{_who(party, role)}: endpoint_id has a scheme but no identifier ({rule})"]
    if scheme == "0088" and not gln_ok(value):
        return [f"{_who(party, role)}: endpoint_id {value!r} is not a valid GLN (13 digits with a GS1 check "
                "digit) (PEPPOL-COMMON-R040)"]
    return []


def peppol_party_problems(seller: PartyRef, buyer: PartyRef, tax_categories: Collection[str]) -> list[str]:
    """Peppol BIS Billing 3.0: the EN 16931 needs plus both parties' electronic addresses."""
    return (en16931_party_problems(seller, buyer, tax_categories)
            + endpoint_problems(seller, "seller") + endpoint_problems(buyer, "buyer"))
