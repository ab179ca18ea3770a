"""Self-help search over a small fixed corpus: the article a person needs comes first for the words they would
write, drafts stay hidden from requesters, filters narrow, and no input breaks the search."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from intake import knowledge
from intake.knowledge import MAX_WORDS, Library, match_expression, searched_words
from tests.builders import T0
from ticketstream_shared.contract.knowledge import ArticleChanged

CORPUS: dict[str, dict[str, Any]] = {
    "vpn-disconnects": {
        "title": "VPN disconnects every hour",
        "body": "If the VPN client drops the connection regularly, sign out of GlobalProtect, restart it and sign in "
        "again. Persistent drops on home Wi-Fi are usually the router's power saving.",
        "service_id": "vpn", "categories": ["network"], "keywords": ["globalprotect", "tunnel", "remote"],
    },
    "vpn-install": {
        "title": "Installing the VPN client at home",
        "body": "Download GlobalProtect from the portal, run the installer and enter the portal address.",
        "service_id": "vpn", "categories": ["network", "software"], "keywords": ["globalprotect", "setup"],
    },
    "password-reset": {
        "title": "Reset a forgotten password",
        "body": "Locked out of your account? Use the self-service portal to reset your password with your phone.",
        "service_id": "accounts", "categories": ["accounts"], "keywords": ["locked", "login", "sign-in"],
    },
    "mfa-new-phone": {
        "title": "Moving two-factor sign-in to a new phone",
        "body": "Before you wipe the old phone, add the new one under security info; then remove the old one.",
        "service_id": "accounts", "categories": ["accounts"], "keywords": ["authenticator", "mfa", "2fa"],
    },
    "mailbox-full": {
        "title": "Mailbox full: free up space in Outlook",
        "body": "Empty Deleted Items, archive old mail and save large attachments to OneDrive to get under quota.",
        "service_id": "email", "categories": ["email"], "keywords": ["quota", "storage", "outlook"],
    },
    "shared-mailbox": {
        "title": "Opening a shared mailbox",
        "body": "In Outlook choose File, Open, Other user's folder, and type the shared mailbox name.",
        "service_id": "email", "categories": ["email"], "keywords": ["delegate", "team inbox"],
    },
    "printer-jam": {
        "title": "Clearing a paper jam",
        "body": "Open the front cover of the printer, pull the jammed paper out slowly in the direction it feeds.",
        "service_id": "printing", "categories": ["printing"], "keywords": ["paper", "jammed"],
    },
    "printer-add": {
        "title": "Adding the office printer to your laptop",
        "body": "Open Settings, Printers, Add a printer, and choose FOLLOW-ME from the list; print jobs wait for "
        "your badge at any printer.",
        "service_id": "printing", "categories": ["printing"], "keywords": ["follow-me", "driver", "print"],
    },
    "laptop-boot": {
        "title": "Laptop does not start after an update",
        "body": "Hold the power button for 15 seconds, plug in the charger and start again; if the update screen "
        "loops, start in recovery mode.",
        "service_id": "laptop", "categories": ["hardware"], "keywords": ["boot", "black screen", "power"],
    },
    "laptop-battery-draft": {
        "title": "Laptop battery drains fast",
        "body": "Lower the screen brightness and close what runs in the background.",
        "service_id": "laptop", "categories": ["hardware"], "keywords": ["battery"], "published": False,
    },
}  # fmt: skip


def change(article_id: str, version: int = 0, **data: Any) -> ArticleChanged:
    return ArticleChanged(
        event_id=uuid.uuid4(), occurred_at=T0, producer="intake", correlation_id="test", changed_by="tech",
        article_id=article_id, data={"published": True, **data},
    )  # fmt: skip


def filled_library() -> Library:
    shelf = Library()
    for article_id, data in CORPUS.items():
        shelf.apply(change(article_id, **data))
    return shelf


@pytest.fixture(scope="module")
def library() -> Library:
    return filled_library()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("VPN keeps disconnecting from home every hour", "vpn-disconnects"),
        ("how do I set up the vpn on my home computer", "vpn-install"),
        ("I forgot my password and I am locked out", "password-reset"),
        ("got a new phone, authenticator app gone", "mfa-new-phone"),
        ("Outlook says my mailbox is full", "mailbox-full"),
        ("the printer has a paper jam", "printer-jam"),
        ("cannot print from my laptop, printer not in the list", "printer-add"),
        ("my laptop won't boot after the update last night", "laptop-boot"),
        ("access to the team inbox", "shared-mailbox"),
    ],
)
def test_the_article_a_person_needs_comes_first(library: Library, words: str, expected: str) -> None:
    hits = library.search(words, published_only=True)
    assert hits and hits[0].article_id == expected, [hit.article_id for hit in hits]


def test_suggestions_are_three_published_articles_at_most(library: Library) -> None:
    suggested = library.suggest("Laptop battery and printer and vpn and mailbox", "also outlook quota and paper")
    assert 0 < len(suggested) <= 3
    assert "laptop-battery-draft" not in {hit.article_id for hit in suggested}


@pytest.mark.parametrize(
    ("title", "service_id", "category", "expected"),
    [
        ("I cannot sign in", None, "", "mfa-new-phone"),
        ("I cannot sign in", "vpn", "network", "vpn-disconnects"),
        ("I cannot sign in", None, "network", "vpn-disconnects"),  # the category's articles, without a service
        ("printer and outlook", "printing", "printing", "printer-add"),
        ("printer and outlook", "email", "email", "mailbox-full"),
        ("connection drops", "printing", "printing", "vpn-disconnects"),  # a boost does not invent a match
    ],
)
def test_a_new_tickets_own_service_comes_first_among_equals(
    library: Library, title: str, service_id: str | None, category: str, expected: str
) -> None:
    suggested = library.suggest(title, "", service_id, category)
    assert suggested[0].article_id == expected, [hit.article_id for hit in suggested]


def test_drafts_only_for_staff_and_filters_narrow(library: Library) -> None:
    assert [hit.article_id for hit in library.search("battery drains", published_only=True)] == []
    assert [hit.article_id for hit in library.search("battery drains", published_only=False)] == [
        "laptop-battery-draft"
    ]
    by_service = library.search("globalprotect mailbox", published_only=True, service_id="vpn")
    assert {hit.article_id for hit in by_service} == {"vpn-disconnects", "vpn-install"}
    by_category = library.search("globalprotect", published_only=True, category="software")
    assert [hit.article_id for hit in by_category] == ["vpn-install"]


def test_a_snippet_marks_the_words_found(library: Library) -> None:
    [hit, *_] = library.search("paper jam", published_only=True)
    assert hit.article_id == "printer-jam" and "pull the **jammed** **paper** out" in hit.snippet


@pytest.mark.parametrize("words", ['" OR NEAR(', "AND OR NOT", "*", "the and for", "", "a b", 'title:"x"'])
def test_no_input_breaks_the_search(library: Library, words: str) -> None:
    library.search(words, published_only=True)  # answers, whatever it finds: SQLite never sees an operator
    expression = match_expression(searched_words(words))
    assert expression is None or all(part.startswith('"') and part.endswith('"') for part in expression.split(" OR "))


def test_a_new_version_replaces_the_old_in_the_index_and_a_twin_counts_once() -> None:
    shelf = Library()
    first = change("kb-1", title="Printer offline", body="Restart the printer.")
    assert shelf.apply(first) and not shelf.apply(first)
    shelf.apply(change("kb-1", title="Scanner offline", body="Restart the scanner."))
    assert shelf.search("printer", published_only=True) == []
    assert [(hit.article_id, hit.version) for hit in shelf.search("scanner", published_only=True)] == [("kb-1", 2)]


SEARCHES = (
    "VPN keeps disconnecting from home every hour",
    "printer jammed, the paper is stuck",
    "mailbox full in outlook, printer too",
    "принтер 打印机 café 2fa sign-in",
    "jams jamming jammed",
)


def _found(shelf: Library) -> list[list[str]]:
    return [[hit.article_id for hit in shelf.search(text, published_only=True)] for text in SEARCHES]


def test_words_remembered_or_forgotten_the_answers_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """A word's term is asked of SQLite once and remembered; a library that forgets them all every few words
    (KNOWN_WORDS) answers every search as one that remembers, and as itself the first time."""
    first = _found(remembering := filled_library())
    assert first[0][0] == "vpn-disconnects" and first[1][0] == "printer-jam"
    assert _found(remembering) == first
    monkeypatch.setattr(knowledge, "KNOWN_WORDS", 3)
    forgetting = filled_library()
    assert _found(forgetting) == first
    assert _found(forgetting) == first
    assert len(forgetting._term_of) <= max(3, MAX_WORDS)
