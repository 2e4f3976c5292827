"""Code lists and identifier checks of Peppol BIS Billing 3.0 that kwhub's documents use.

``EAS_CODES`` is the Electronic Address Scheme code list as Peppol BIS Billing 3.0
accepts it for ``EndpointID/@schemeID`` (rule PEPPOL-EN16931-CL008; the CEF list without
``EM``). :func:`gln_ok` is the GS1 check-digit test of a Global Location Number (scheme
``0088``, rule PEPPOL-COMMON-R040).
"""

from __future__ import annotations

EAS_CODES = frozenset("""
0002 0007 0009 0037 0060 0088 0096 0097 0106 0130 0135 0142 0151 0183 0184 0188 0190 0191 0192
0193 0195 0196 0198 0199 0200 0201 0202 0204 0208 0209 0210 0211 0212 0213 0215 0216 0218 0221
0230 9901 9910 9913 9914 9915 9918 9919 9920 9922 9923 9924 9925 9926 9927 9928 9929 9930 9931
9932 9933 9934 9935 9936 9937 9938 9939 9940 9941 9942 9943 9944 9945 9946 9947 9948 9949 9950
9951 9952 9953 9957 9959
""".split())


def gln_ok(value: str) -> bool:
    """A GLN: digits only, the last one the GS1 check digit of the others (weights 3, 1 from the right)."""
    v = value.strip()
    if not v.isdigit() or len(v) < 2:
        return False
    body = [int(c) for c in v[:-1]]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == int(v[-1])
