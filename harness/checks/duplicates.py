"""Duplicates (design §10, duplicate tweet from retry): a post retried with its idempotency key
makes one tweet, and a repeated retweet is the same retweet.

Anomalies:
- a retried post (action post_retry) whose attempts were answered with more than one tweet id;
- an author's final tweets holding a retried post's text more than once: the attempt nobody
  saw answered (its connection was cut, or its client gave up) made a tweet of its own;
- one user's retweets of one tweet answered with two retweet ids, with no undo acknowledged
  between them.

A run with no retried post and no repeated retweet cannot judge this (unknown, not gating).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import final_reads, not_exercised
from harness.rundata import RunData

NAME = "duplicates"


def check(run: RunData) -> CheckResult:
    retries = [a for a in run.actions if a.kind == "post_retry"]
    answered: list[dict[str, Any]] = [{"key": a.key, "author": a.user, "tweets": a.ids}
                                      for a in retries if len(set(a.ids)) > 1]
    authors = final_reads(run, "author")
    doubled: list[dict[str, Any]] = []
    texts_checked = 0
    for a in retries:
        read = authors.get(a.user)
        if read is None or a.text is None:
            continue
        texts_checked += 1
        made = sorted(t for t, text in read.texts.items() if text == a.text)
        if len(made) > 1:
            doubled.append({"key": a.key, "author": a.user, "tweets": made})
    retweets: list[dict[str, Any]] = []
    repeats = 0
    history: dict[tuple[int, str], list[tuple[float, str, list[str]]]] = defaultdict(list)
    for a in run.actions:
        if a.kind in ("retweet", "unretweet") and a.tweet:
            history[(a.user, a.tweet)].append((a.t, a.kind, a.ids))
    for (user, original), seq in history.items():
        current: str | None = None
        for _, kind, ids in sorted(seq):
            if kind == "unretweet":
                current = None
                continue
            rid = ids[0] if ids else None
            if current is not None:
                repeats += 1
                if rid != current:
                    retweets.append({"user": user, "original": original, "retweets": [current, rid]})
            current = rid
    if not retries and not repeats:
        return not_exercised(NAME, "no post was retried and no retweet repeated in this run")
    counted = Counter(len(set(a.ids)) for a in retries)
    evidence = {"retried_posts": len(retries), "retries_answered_once": counted.get(1, 0),
                "final_texts_checked": texts_checked, "repeated_retweets": repeats,
                "answered_two_tweets": len(answered), "answered_two_tweets_examples": answered[:EXAMPLES_MAX],
                "stored_twice": len(doubled), "stored_twice_examples": doubled[:EXAMPLES_MAX],
                "duplicate_retweets": len(retweets), "duplicate_retweets_examples": retweets[:EXAMPLES_MAX]}
    summary = (f"{len(retries)} retried posts ({texts_checked} checked in their author's tweets), {repeats} repeated "
               f"retweets: {len(answered) + len(doubled)} posts made twice, {len(retweets)} retweets made twice "
               "(bound 0)")
    if answered or doubled or retweets:
        if answered or doubled:
            e = (answered or doubled)[0]
            example = f"idempotency key {e['key']} of user {e['author']} made tweets {', '.join(map(str, e['tweets']))}"
        else:
            r = retweets[0]
            example = f"user {r['user']} retweeted {r['original']} twice: {', '.join(map(str, r['retweets']))}"
        return CheckResult(NAME, Verdict.FAIL, f"{summary}; e.g. {example}", evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
