"""The "Methods and definitions" appendix of the oversight report: what each number means.

One (term, text) pair per entry, in the order the report shows them; plain text, no markup.
"""

from __future__ import annotations

__all__ = ["METHODS"]

METHODS: tuple[tuple[str, str], ...] = (
    ('Data cut',
     'The study as it was on a date: only records known on that date count. The report describes one '
     'cut; "previous cut" is the cut before it, and every "change" or "new" compares the two.'),
    ('Enrolment versus plan',
     'Enrolled subjects are those randomised (a reference start date and an arm other than screen '
     "failure) by the cut; screened counts every consented subject. Planned is the sum of the sites' "
     'planned enrolment (sites table, PLANNEDENR) for the whole study, so early in enrolment every '
     'site is below plan.'),
    ('Key risk indicator (KRI)',
     "A site's rate or proportion (the numerator over the denominator of its definition, for example "
     'AEs per 1,000 days on study) compared with the other sites. The KRI library lists every '
     'definition; the table below names each KRI, its unit, method and thresholds.'),
    ('Score',
     "How far a site's metric lies from the study-wide value, in over-dispersion-adjusted standard "
     'deviations (normal approximation, as gsm does), or the metric itself for identity KRIs. A site '
     "below the KRI's minimum (too few subjects or events) is not scored."),
    ('Flag',
     ("The band of the score between the KRI's thresholds: amber (+-1) or red (+-2), above the other "
      "sites (triangles pointing up, red colours) or below them (pointing down, blue colours); two "
      "triangles for red, one for amber. The colours are ColorBrewer's RdBu, safe for colour-blind "
      "readers, and the symbols carry the same information.")),
    ('Site risk score and rank',
     "100 times the sum of the weights of a site's flags over the sum of the largest weight of each "
     'KRI it was scored on (0 = no flag, 100 = red on every KRI). Rank 1 is the highest score; ties '
     "share a rank. Previous rank is the site's rank at the previous cut."),
    ('Reasons a site is at risk',
     'Each amber or red KRI flag of the site, with its metric against the value across all sites, and '
     'each significant central-monitoring finding (q < 0.05) at the site, red before amber and KRIs '
     'before central-monitoring findings.'),
    ('Quality tolerance limit (QTL)',
     'A study-level parameter (for example the share of subjects with an important protocol deviation) '
     'with a secondary (warning) limit and a tolerance limit. The estimate comes with a 95% interval; '
     'the status compares the estimate with the limits ("within limits", "secondary limit crossed", '
     '"tolerance limit breached"). P(exceed) is the posterior probability that the true rate exceeds '
     'the tolerance limit. Limits are the library\'s unless the study set its own ("study"), recorded '
     'with a rationale.'),
    ('QTL breach log',
     'Each run of cuts with a tolerance limit breached opens one evaluation in the store: whether the '
     'issue is systemic, its root cause and the corrective and preventive action (CAPA), then the '
     "quality lead's sign-off (ICH E6(R3); ICH E3 section 9.6 for the clinical study report)."),
    ('Signal',
     'A finding that needs a documented decision: an amber or red KRI flag of a site, a QTL past its '
     'secondary (amber) or tolerance (red) limit, or a central-monitoring finding with q < 0.05 (red '
     'below 0.01). Across cuts a signal is new, persisting, escalated (red after amber), de-escalated '
     'or resolved (no longer flagged).'),
    ('Workflow status and overdue',
     "The signal's status in the store: new, under review, action planned, in progress, resolved, or "
     'closed without action (with a justification), with its owner and due date. A signal is overdue '
     'when its due date has passed and it is neither resolved nor closed. "not recorded" means the '
     'store has not recorded the signal yet; "-" that the report was made without the store.'),
    ('Suggested actions and priority',
     'Targeted actions from the actions catalogue for each open signal, with where to look (subjects, '
     'pages or queries). Priority = severity (amber 1, red 2) x persistence (1 to 3) x site risk (1 to '
     '2) x site size (0.5 to 2).'),
    ('Outcome after action',
     'For each signal acted on (a linked action, or the status action planned or in progress), its '
     'indicator at the cut of the first action against the latest cut up to the report\'s: improved when '
     'the flag\'s severity fell (or it is no longer flagged) or, at the same severity, its strength moved '
     'toward normal by at least the margin (KRI 1 z unit, CSM a tenfold change of q, QTL a tenth of the '
     'tolerance limit); worsened the other way; unchanged otherwise; too early without a later cut. The '
     'share improved is over the assessed signals (not too early), against the field\'s benchmark given with '
     'it (key_risk_indicators/signal_workflow.yaml). rbqm.outcomes computes it; the dashboard and rbqm signals outcomes show the same.'),
    ('Central statistical monitoring (CSM)',
     'Tests that compare each site with the rest of the study: AE and SAE under-reporting (simulation, '
     'as simaerep), terminal-digit preference, and subjects whose measurements vary too little from '
     'visit to visit. The q-value is the p-value adjusted for the number of sites tested (Benjamini- '
     'Hochberg) within each test; findings with q < 0.05 are shown, the most significant first.'),
    ('Risk register',
     "The study's critical-to-quality risks, each scored impact x likelihood x detectability (1-3 "
     'each, so 1-27): low below 8, medium 8-17, high from 18. The study level is the weighted mean of '
     "the categories' highest scores. A review proposal suggests raising a risk's likelihood when its "
     'indicators flag at several sites at consecutive cuts or its QTL is breached, and lowering it when '
     'they have stayed quiet for several cuts (docs/risk.md).'),
)
