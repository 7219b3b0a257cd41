"""The grader self-check's misses that were investigated by hand: (check, id) -> explanation.

Data only (benchmarks.lab.grading_selfcheck attaches these to its misses); a miss not listed here
is reported as UNEXPLAINED.
"""

# The GSM8K "no-####" check
# reads a worked solution with its "#### N" line removed, so the last number in the text answers:
# these misses show where that fallback heuristic is wrong, not where the grader is.
_TRAILING = (
    "Last-number fallback limit: the final sentence ends by restating a quantity from the "
    "question ({tail}) after the answer, so the last number is not the answer."
)
_CENTS = (
    "Last-number fallback limit: the solution ends with the price in dollars ({tail}) while the "
    "question asks for cents; the '####' line converts it."
)
_GSM8K_NO_HASH = {
    "0020": _TRAILING.format(tail="'out of the 24 liters'"),
    "0035": _TRAILING.format(tail="'in the 40 minutes'"),
    "0147": _TRAILING.format(tail="'in the last 6 hours'"),
    "0266": "Last-number fallback limit: '$118 000' uses a space as the thousands separator, so "
    "the last number is '000'. Spaces are not read as separators on purpose ('3 000' may be two numbers).",
    "0287": _TRAILING.format(tail="'rows of 5 stars'"),
    "0308": _TRAILING.format(tail="'2 tubs of ice cream and 4 packets of milk'"),
    "0309": _TRAILING.format(tail="'after 15 days'"),
    "0324": _TRAILING.format(tail="'the 5 people'"),
    "0439": _TRAILING.format(tail="'5 minutes sooner'"),
    "0451": _TRAILING.format(tail="'to fill 170 balloons'"),
    "0493": _CENTS.format(tail="'$0.25 each', gold 25"),
    "0505": "Last-number fallback limit: the answer comes first and a comparison follows "
    "('1600 > 1200').",
    "0538": _TRAILING.format(tail="'the 72 vlogs'"),
    "0574": _TRAILING.format(tail="'per 10 sandwiches'"),
    "0593": "Last-number fallback limit: the answer is written in words ('three days') after "
    "the last numeral (32 feet).",
    "0601": _TRAILING.format(tail="'after 3 years'"),
    "0605": _TRAILING.format(tail="'for 6 hours'"),
    "0607": _CENTS.format(tail="'$0.10', gold 10"),
    "0623": _TRAILING.format(tail="'4 years from now'"),
    "0635": "Last-number fallback limit: the answer comes first and the check follows "
    "('skip 4 class because 10 - 4 = 6').",
    "0638": _TRAILING.format(tail="'for 5 apples and 5 oranges'"),
    "0645": _TRAILING.format(tail="'in 3 bags'"),
    "0659": _TRAILING.format(tail="'1/3 pound walnuts'"),
    "0669": _TRAILING.format(tail="'to make 16 muffins'"),
    "0674": _TRAILING.format(tail="'to be 600 inches'"),
    "0760": _TRAILING.format(tail="'horse #12'"),
    "0814": _TRAILING.format(tail="'in the 4 hours'"),
    "0853": _TRAILING.format(tail="'to clean 45 rooms'"),
    "1038": "Dataset inconsistency, not the grader: the worked solution concludes '6 years' but "
    "its '#### 4' label says 4 (a known GSM8K label error).",
    "1051": _TRAILING.format(tail="'in 30 days'"),
    "1085": _TRAILING.format(tail="'in 13 years'"),
    "1117": _TRAILING.format(tail="'to blink 459 times'"),
    "1221": _TRAILING.format(tail="'to make 80 meatballs'"),
    "1243": _CENTS.format(tail="'$0.50', gold 50"),
    "1300": _TRAILING.format(tail="'in 2 weeks'"),
    "1314": _TRAILING.format(tail="'in 3 years'"),
}
# ProcessBench disagreements: our verdict on the model's final answer vs ProcessBench's own
# final_answer_correct label, for solutions to GSM8K / MATH test problems.
_NO_FINAL = (
    "Extraction limit: the solution states its answer only in prose/LaTeX ({said}), with no "
    "\\boxed{{}} or 'the answer is', so the last-number fallback reads {read}. Not a grader error; "
    "a 'last math expression' fallback was tried and agreed less often on this set (73 vs 78 of 86)."
)
_VALUE_ONLY = (
    "Label semantics: the answer has the gold value ({why}) and we grade values; ProcessBench "
    "marks it wrong because the question asks for a specific form ({form})."
)
_RIGHT_BY_LUCK = (
    "Label semantics: the final answer equals the gold answer, reached through wrong steps "
    "(first error at step {step}); ProcessBench marks such a final answer wrong, we grade the answer."
)
_NO_ANSWER_LUCK = (
    "Extraction limit: the solution never states a final answer; the last number in it ({n}) "
    "happens to equal the gold answer. ProcessBench rightly says wrong."
)
_PROCESSBENCH = {
    "gsm8k-70": _RIGHT_BY_LUCK.format(step=0),
    "gsm8k-74": _RIGHT_BY_LUCK.format(step=4)
    + " (3500 / 2250 rounded up to 2 trips; the sum 3500 is wrong)",
    "gsm8k-238": _NO_FINAL.format(
        said="'34 hours' in a \\[...\\] display", read="'4' from 'in 4 weeks'"
    ),
    "gsm8k-319": "Ambiguous question ('how many red and blue shoe boxes are left'): the boxed answer "
    "is the phrase '4 blue shoe boxes and 6 red shoe boxes'; GSM8K's gold is the total 10. A grader "
    "cannot add the parts; ProcessBench's annotators accepted it.",
    "math-50": _NO_ANSWER_LUCK.format(n=7),
    "math-123": _VALUE_ONLY.format(
        why="411/333 = 137/111",
        form="a fraction in lowest terms; the solution wrongly claims 411 and 333 are coprime",
    ),
    "math-221": _RIGHT_BY_LUCK.format(step=0) + " (23/2 = 11.5)",
    "math-247": _VALUE_ONLY.format(why="-58/87 = -2/3", form="'a simplified common fraction'"),
    "math-248": _VALUE_ONLY.format(
        why="10.5 pi = 21/2 pi", form="'a common fraction in terms of pi'"
    ),
    "math-278": _RIGHT_BY_LUCK.format(step=0) + " (the ratio 1:2 answered as 1/2)",
    "math-381": _NO_ANSWER_LUCK.format(n=15),
    "math-392": _VALUE_ONLY.format(
        why="1/(sin x cos x) - tan x = cot x",
        form="'Simplify': the unsimplified expression is wrong",
    ),
    "math-633": _NO_FINAL.format(said="'-\\frac{2\\sqrt{3}}{3}' in \\(...\\)", read="'3'"),
    "math-679": _NO_FINAL.format(
        said="'f(x) = -x + 1' in a display", read="'-1' from the derivative"
    ),
    "math-791": _NO_FINAL.format(
        said="'only takes on the integer value 0', i.e. one value",
        read="'0'; the question asks how many integers are in the range (gold 1)",
    ),
    "math-837": _NO_FINAL.format(said="the interval [-pi/2, pi/2] in \\(...\\)", read="'2'"),
    "math-890": _NO_FINAL.format(said="'\\frac{8\\pi}{5} square units'", read="'5'"),
    "math-902": _NO_FINAL.format(said="'-\\frac{24}{25}' in $...$", read="'25'"),
    "math-957": _NO_FINAL.format(said="'x^2 + y^2 = 13' in a display", read="'13'"),
}
KNOWN_MISSES: dict[tuple[str, str], str] = {
    ("gsm8k/no-####", f"gsm8k-test-{k}"): v for k, v in _GSM8K_NO_HASH.items()
}
KNOWN_MISSES.update(
    {
        (f"processbench-{k.split('-')[0]}/final-answer-agreement", k): v
        for k, v in _PROCESSBENCH.items()
    }
)
