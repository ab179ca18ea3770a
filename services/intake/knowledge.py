"""Knowledge articles: every version folded from knowledge.articles, and a full-text index of the newest version of
each, which self-help search and the suggestions on a new ticket read.

The index is SQLite's FTS5 in memory (Python's standard library, nothing to install or run): BM25 ranking, Porter
stemming ("printing" finds "printer"), snippets with the words found marked. At 10,000 articles a suggestion costs
well under a millisecond (`make bench knowledge`). Each intake replica folds the whole log, as it folds sla.config.

Ranking: a word in the title counts most, then the keywords, the categories, and the body. The searcher's words are
OR-ed (a requester describes a problem, they do not write queries), so an article matching more and rarer words
ranks first; a word of one or two letters, or a common English word, is left out. A new ticket's suggestions
favour the articles of its service and category.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from ticketstream_shared.contract import Actor
from ticketstream_shared.contract.knowledge import ArticleChanged, ArticleData

#: BM25 weights of the indexed columns, in their order: title, keywords, categories, body.
WEIGHTS = (10.0, 5.0, 3.0, 1.0)
SUGGESTIONS = 3
#: How much more an article of a new ticket's own service or category counts among the suggestions: the ticket
#: already says where the problem lies, and its words alone may fit an article elsewhere as well.
OWN_SERVICE_BOOST = 2.0
#: The words of a search or a new ticket that count, the first ones written: a long description says what the
#: problem is at the start, and every word searched costs a pass over the articles that have it.
MAX_WORDS = 16
#: How many (article, word) matches a search scores at most, besides its rarest word's: a bound on its cost.
POSTINGS = 500
#: How many words' terms a library keeps (a few MB), forgetting them all past it: typed words have no end.
KNOWN_WORDS = 50_000
#: Letters and digits, as SQLite's unicode61 tokenizer splits text (an underscore separates): a word searched is one
#: term of the index.
_WORD = re.compile(r"[^\W_]+")
#: Words that say nothing about a problem, however often people write them.
STOP_WORDS = frozenset((
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one", "our", "out",
    "has", "have", "him", "his", "how", "its", "may", "new", "now", "see", "two", "who", "did", "get", "got", "let",
    "she", "too", "use", "with", "this", "that", "from", "they", "will", "would", "there", "their", "what", "when",
    "which", "while", "your", "into", "does", "doesn", "don", "cannot", "isn", "work", "works",
    "working", "please", "help", "hello", "thanks", "thank", "since", "some",
))  # fmt: skip


@dataclass(frozen=True)
class Version:
    number: int
    recorded_at: datetime
    changed_by: str
    data: ArticleData
    actor: Actor | None = None  # None: made before actors were recorded


@dataclass(frozen=True)
class Hit:
    article_id: str
    title: str
    snippet: str
    service_id: str | None
    version: int


def searched_words(text: str) -> list[str]:
    """The words of a search that may count, once each, in the order written: not too short, not common English."""
    words = [word for word in _WORD.findall(text.lower()) if len(word) > 2 and word not in STOP_WORDS]
    return list(dict.fromkeys(words))[:MAX_WORDS]


def match_expression(words: list[str]) -> str | None:
    """Words as an FTS5 query: each quoted (no operator syntax reaches SQLite), OR-ed; None without any."""
    return " OR ".join(f'"{word}"' for word in words) or None


def snippet(body: str, words: list[str], width: int = 30) -> str:
    """About `width` words of the body from a little before its first word searched, those words (and their
    other forms: "jam", "jammed") in **bold**; its beginning if none is in it. SQLite's snippet() would be made for
    every match before the ranking kept three."""
    stems = tuple(word[:5] for word in words)  # at most five letters compared, as stemming would
    tokens = body.split()

    def searched(token: str) -> bool:
        return token.strip(".,;:!?()[]{}\"'*_`").lower().startswith(stems)

    first = next((index for index, token in enumerate(tokens) if searched(token)), 0)
    start = max(0, first - width // 4)
    shown = [f"**{token}**" if searched(token) else token for token in tokens[start : start + width]]
    return f"{'…' if start else ''}{' '.join(shown)}{'…' if start + width < len(tokens) else ''}"


class Library:
    def __init__(self) -> None:
        self.versions: dict[str, list[Version]] = {}
        self._folded: set[str] = set()
        self._rowids: dict[str, int] = {}
        self._articles_by_term: dict[str, int] = {}
        self._term_of: dict[str, str | None] = {}
        # Made where the app is built, used only on the event loop's thread (one at a time, never concurrently).
        # Autocommit: FTS5 keeps what a transaction has not committed in memory apart, and every query merges it in.
        self._index = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._index.execute(
            "CREATE VIRTUAL TABLE articles USING fts5(title, keywords, categories, body, article_id UNINDEXED, "
            "service_id UNINDEXED, category_list UNINDEXED, published UNINDEXED, tokenize = 'porter unicode61')"
        )
        # How many articles have each term, and a table that turns a searcher's words into the same terms.
        self._index.execute("CREATE VIRTUAL TABLE terms USING fts5vocab(articles, 'row')")
        self._index.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize = 'porter unicode61')")
        self._index.execute("CREATE VIRTUAL TABLE probe_terms USING fts5vocab(probe, 'instance')")

    def apply(self, change: ArticleChanged, live: bool = True) -> bool:
        """Fold one change of knowledge.articles; False for one read already (the same event id)."""
        if str(change.event_id) in self._folded:
            return False
        self._folded.add(str(change.event_id))
        versions = self.versions.setdefault(change.article_id, [])
        versions.append(Version(len(versions) + 1, change.occurred_at, change.changed_by, change.data, change.actor))
        data = change.data
        # One row per article, under a rowid of its own: replacing it by rowid touches that row only (a DELETE on an
        # unindexed column scans the whole index, which made folding 10k articles quadratic).
        self._articles_by_term.clear()
        rowid = self._rowids.setdefault(change.article_id, len(self._rowids) + 1)
        self._index.execute("DELETE FROM articles WHERE rowid = ?", (rowid,))
        self._index.execute(
            "INSERT INTO articles(rowid, title, keywords, categories, body, article_id, service_id, category_list, "
            "published) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rowid,
                data.title,
                " ".join(data.keywords),
                " ".join(data.categories),
                data.body,
                change.article_id,
                data.service_id,
                f" {' '.join(data.categories)} ",
                int(data.published),
            ),
        )
        return True

    def current(self, article_id: str) -> Version | None:
        versions = self.versions.get(article_id)
        return versions[-1] if versions else None

    def search(
        self,
        text: str,
        *,
        published_only: bool,
        service_id: str | None = None,
        category: str | None = None,
        limit: int = 10,
        boosted: tuple[str | None, str] | None = None,
    ) -> list[Hit]:
        """The articles best matching `text`, best first, each with a snippet of the body around the words found.
        `boosted`: a (service, category) whose articles count OWN_SERVICE_BOOST times as much."""
        words = self._telling_words(searched_words(text))
        expression = match_expression(words)
        if expression is None:
            return []
        conditions, parameters = ["articles MATCH ?"], [expression]
        if published_only:
            conditions.append("published = 1")
        if service_id is not None:
            conditions.append("service_id = ?")
            parameters.append(service_id)
        if category is not None:
            conditions.append("instr(category_list, ?) > 0")
            parameters.append(f" {category} ")
        # bm25() is negative, the best the lowest: a boost multiplies it.
        rank, rank_parameters = f"bm25(articles, {', '.join(map(str, WEIGHTS))})", []
        if boosted is not None:
            rank += f" * CASE WHEN service_id = ? OR instr(category_list, ?) > 0 THEN {OWN_SERVICE_BOOST} ELSE 1 END"
            rank_parameters = [boosted[0], f" {boosted[1]} "]
        rows = self._index.execute(
            f"SELECT article_id, title, service_id FROM articles WHERE {' AND '.join(conditions)} "
            f"ORDER BY {rank}, article_id LIMIT ?",
            (*parameters, *rank_parameters, limit),
        ).fetchall()
        return [
            Hit(
                article_id,
                title,
                snippet(self.current_body(article_id), words),
                service,
                len(self.versions[article_id]),
            )
            for article_id, title, service in rows
        ]

    def current_body(self, article_id: str) -> str:
        return self.versions[article_id][-1].data.body

    def _articles_with(self, term: str) -> int:
        """How many articles have `term`: one seek (an IN list would make SQLite read the whole vocabulary), kept
        until the next article changes."""
        if term not in self._articles_by_term:
            found = self._index.execute("SELECT doc FROM terms WHERE term = ?", (term,)).fetchone()
            self._articles_by_term[term] = found[0] if found else 0
        return self._articles_by_term[term]

    def _telling_words(self, words: list[str]) -> list[str]:
        """The searcher's words that tell articles apart, rarest first: those no article has are left out, and the
        commonest too once the articles matched would pass POSTINGS (the cost of a search is the articles it
        scores, and a word most articles have hardly changes their order)."""
        terms = self._terms(words)
        having = {term: articles for term in set(terms.values()) if term and (articles := self._articles_with(term))}
        found = sorted((having[term], index) for index, word in enumerate(words) if (term := terms[word]) in having)
        telling: list[str] = []
        postings = 0
        for articles, index in found:
            if telling and postings + articles > POSTINGS:
                break
            telling.append(words[index])
            postings += articles
        return telling

    def _terms(self, words: list[str]) -> dict[str, str | None]:
        """Each word's term in the index (its Porter stem; None for a word the tokenizer keeps nothing of), asked
        of SQLite once per word: the probe is a write to an index, and most words of new tickets were seen before."""
        unknown = [word for word in words if word not in self._term_of]
        if unknown:
            if len(self._term_of) + len(unknown) > KNOWN_WORDS:
                self._term_of.clear()
                unknown = words
            # One probe row per word: its first term is the word's, however the tokenizer splits it.
            self._index.executemany("INSERT INTO probe(rowid, text) VALUES (?, ?)", enumerate(unknown, 1))
            stems = dict(self._index.execute("SELECT doc, term FROM probe_terms WHERE offset = 0"))
            self._index.execute("DELETE FROM probe")
            self._term_of.update((word, stems.get(row)) for row, word in enumerate(unknown, 1))
        return {word: self._term_of[word] for word in words}

    def suggest(self, title: str, description: str, service_id: str | None = None, category: str = "") -> list[Hit]:
        """Up to three published articles for a new ticket, from what its requester wrote, those of its service or
        category first among equals."""
        return self.search(
            f"{title} {description}", published_only=True, limit=SUGGESTIONS, boosted=(service_id, category)
        )
