"""Procedural text generators for the demo corpus, one per domain.

Each generator draws from its own vocabulary and document shapes with a seeded
``random.Random``, so domains are plainly separable and a seed always gives the same text.
"""

from __future__ import annotations

import random
from collections.abc import Callable

def _w(s: str) -> list[str]:
    return s.split("|")


def normalise(text: str) -> str:
    """The key an exact-dedup stage is expected to compare: case and spacing do not count."""
    return " ".join(text.lower().split())


NAMES = _w("Maya|Liam|Priya|Jonah|Sofia|Mateo|Aisha|Oliver|Hana|Diego|Chloe|Noah|Zara|Ethan|Lucia|Omar|Grace|Felix|Nadia|Samuel|Amara|Kenji|Ruby|Tomas")
SURNAMES = _w("Okafor|Lindqvist|Moreau|Tanaka|Haddad|Kowalski|Fernandes|Brennan|Achebe|Novak|Castillo|Whitfield|Sato|Mensah|Duval|Rahman|Ortega|Petrov|Quinlan|Abara")

# ---------------------------------------------------------------- math
_ITEMS = _w("pencils|notebooks|stickers|apples|comic books|marbles|erasers|juice boxes|trading cards|cupcakes")
_BAKED = _w("cookies|muffins|brownies|cupcakes|lemon bars")


def math_problem(r: random.Random) -> tuple[str, str]:
    """One word problem with a worked solution; the arithmetic is computed, never invented."""
    nm, kind = r.choice(NAMES), r.randrange(12)
    if kind == 0:
        n, p, item = r.randint(3, 12), r.randint(2, 9), r.choice(_ITEMS)
        c = n * p
        bill = next(b for b in (20, 50, 100, 200) if b > c)
        return (f"{nm} buys {n} {item} at ${p} each and pays with a ${bill} bill. How much change does {nm} receive?",
                f"The {item} cost {n} × ${p} = ${c}. The change is ${bill} - ${c} = ${bill - c}. The answer is {bill - c}.")
    if kind == 1:
        k, q, item = r.randint(3, 8), r.randint(3, 12), r.choice(_ITEMS)
        rem = r.randint(0, k - 1)
        t = k * q + rem
        return (f"{nm} has {t} {item} and shares them equally among {k} friends. How many {item} does each friend get, and how many are left over?",
                f"Since {k} × {q} = {k * q} and {t} - {k * q} = {rem}, dividing {t} by {k} gives {q} with remainder {rem}. Each friend gets {q} {item} and {rem} are left over. The answer is {q}.")
    if kind == 2:
        v, u = r.choice(_w("train|bus|cyclist|delivery truck|ferry")), r.choice(_w("miles|kilometers"))
        s1, h1, s2, h2 = r.randint(4, 12) * 5, r.randint(2, 5), r.randint(4, 12) * 5, r.randint(1, 4)
        d1, d2 = s1 * h1, s2 * h2
        return (f"A {v} travels at {s1} {u} per hour for {h1} hours, then at {s2} {u} per hour for {h2} more hours. How far does it travel in total?",
                f"In the first part it covers {s1} × {h1} = {d1} {u}. In the second part it covers {s2} × {h2} = {d2} {u}. Altogether that is {d1} + {d2} = {d1 + d2} {u}. The answer is {d1 + d2}.")
    if kind == 3:
        den = r.choice((2, 3, 4, 5))
        num, n, b = r.randint(1, den - 1), den * r.randint(3, 12), r.choice(_BAKED)
        g = n // den * num
        e = r.randint(1, max(1, n - g))
        return (f"{nm} baked {n} {b}. {nm} gave {num}/{den} of them to the neighbors and then ate {e}. How many {b} are left?",
                f"{num}/{den} of {n} is {n} ÷ {den} × {num} = {g}. After giving those away, {n} - {g} = {n - g} remain. After eating {e}, {n - g} - {e} = {n - g - e} are left. The answer is {n - g - e}.")
    if kind == 4:
        p, pct, cpn = 20 * r.randint(2, 15), r.choice((10, 20, 25, 50)), r.choice((5, 10))
        off = p * pct // 100
        return (f"A {r.choice(_w('jacket|pair of sneakers|backpack|board game|scooter'))} costs ${p}. The store takes {pct}% off, and {nm} then uses a ${cpn} coupon. How much does {nm} pay?",
                f"The discount is {pct}% of ${p}, which is ${off}. The sale price is ${p} - ${off} = ${p - off}. With the coupon, {nm} pays ${p - off} - ${cpn} = ${p - off - cpn}. The answer is {p - off - cpn}.")
    if kind == 5:
        a, b = r.randint(10, 40), r.randint(3, 9)
        t = 2 * a
        return (f"{nm} reads {a} pages on Monday, twice as many pages on Tuesday, and {b} fewer pages on Wednesday than on Tuesday. How many pages does {nm} read in all?",
                f"On Tuesday {nm} reads 2 × {a} = {t} pages. On Wednesday {nm} reads {t} - {b} = {t - b} pages. The total is {a} + {t} + {t - b} = {a + t + t - b} pages. The answer is {a + t + t - b}.")
    if kind == 6:
        ln, wd, f = r.randint(6, 25), r.randint(3, 15), r.randint(2, 8)
        per = 2 * (ln + wd)
        return (f"A rectangular garden is {ln} meters long and {wd} meters wide. Fencing costs ${f} per meter. How much does it cost to fence the whole garden, and what is its area?",
                f"The perimeter is 2 × ({ln} + {wd}) = {per} meters, so the fence costs {per} × ${f} = ${per * f}. The area is {ln} × {wd} = {ln * wd} square meters. The answer is {per * f}.")
    if kind == 7:
        a, d, y = r.randint(6, 14), r.randint(2, 9), r.randint(3, 10)
        s = a + y + a + d + y
        return (f"{nm} is {a} years old. {nm}'s cousin is {d} years older. In {y} years, what will the sum of their ages be?",
                f"The cousin is {a} + {d} = {a + d} now. In {y} years {nm} will be {a + y} and the cousin will be {a + d + y}. The sum is {a + y} + {a + d + y} = {s}. The answer is {s}.")
    if kind == 8:
        x, wk, have = r.randint(5, 25), r.randint(4, 15), r.randint(5, 60)
        goal = have + x * wk
        return (f"{nm} wants a {r.choice(_w('bicycle|telescope|keyboard|tent|guitar'))} that costs ${goal}. {nm} already has ${have} and saves ${x} each week. How many weeks will it take?",
                f"{nm} still needs ${goal} - ${have} = ${goal - have}. At ${x} per week that takes {goal - have} ÷ {x} = {wk} weeks. The answer is {wk}.")
    if kind == 9:
        st, cap = r.randint(60, 250), r.choice((30, 40, 45, 50))
        buses = -(-st // cap)
        return (f"A school has {st} students going on a field trip. Each bus holds {cap} students. How many buses are needed?",
                f"{st} ÷ {cap} = {st // cap} with {st % cap} students left over, and those students still need a seat, so round up. The school needs {buses} buses. The answer is {buses}.")
    if kind == 10:
        ch, cw = r.randint(5, 30), r.randint(2, 15)
        return (f"A farmer has {ch} chickens and {cw} cows. How many legs do the animals have altogether?",
                f"The chickens have {ch} × 2 = {2 * ch} legs and the cows have {cw} × 4 = {4 * cw} legs. Together that is {2 * ch} + {4 * cw} = {2 * ch + 4 * cw} legs. The answer is {2 * ch + 4 * cw}.")
    dz, m, left = r.randint(2, 9), r.randint(5, 40), r.randint(1, 10)
    return (f"A bakery sells {dz} dozen muffins in the morning and {m} muffins in the afternoon. It started the day with {12 * dz + m + left} muffins. How many muffins are left?",
            f"In the morning it sells {dz} × 12 = {12 * dz} muffins. In total it sells {12 * dz} + {m} = {12 * dz + m}. It has {12 * dz + m + left} - {12 * dz + m} = {left} muffins left. The answer is {left}.")


def _math_doc(r: random.Random) -> str:
    probs = [math_problem(r) for _ in range(r.randint(1, 3))]
    if len(probs) == 1 and r.random() < 0.6:
        return f"{probs[0][0]} {probs[0][1]}"
    head = r.choice(_w("Practice set: multi-step word problems.|Grade 4 homework, with worked solutions.|Word problems for review.|Math club warm-up problems."))
    style = r.randrange(2)
    body = "\n\n".join(f"Problem {i}: {q}\nSolution: {a}" if style else f"Question: {q}\nAnswer: {a}" for i, (q, a) in enumerate(probs, 1))
    return f"{head}\n\n{body}"


# ---------------------------------------------------------------- code
_NOUNS = _w("scores|prices|readings|temperatures|weights|latencies|votes|samples|balances|distances")
CODE_SPECS = [  # name, arguments, docstring, body (unindented)
    ("count_{noun}_above", "values, threshold={k}", "Count how many {noun} in values are strictly greater than threshold.", "return sum(1 for v in values if v > threshold)"),
    ("average_{noun}", "values", "Return the arithmetic mean of the {noun}, or 0.0 for an empty list.", "if not values:\n    return 0.0\nreturn sum(values) / len(values)"),
    ("normalize_{noun}", "values", "Scale the {noun} linearly so the smallest becomes 0 and the largest 1.", "lo, hi = min(values), max(values)\nif hi == lo:\n    return [0.0 for _ in values]\nreturn [(v - lo) / (hi - lo) for v in values]"),
    ("chunk_{noun}", "items, size={k}", "Split the {noun} into consecutive lists of at most size elements.", "return [items[i:i + size] for i in range(0, len(items), size)]"),
    ("is_palindrome", "text", "Return True if text reads the same backwards, ignoring case and spaces.", "cleaned = ''.join(ch.lower() for ch in text if not ch.isspace())\nreturn cleaned == cleaned[::-1]"),
    ("word_frequencies", "text", "Map each lowercase word in text to the number of times it occurs.", "counts = {{}}\nfor word in text.lower().split():\n    counts[word] = counts.get(word, 0) + 1\nreturn counts"),
    ("fizzbuzz", "n", "Return the FizzBuzz sequence from 1 to n as a list of strings.", "out = []\nfor i in range(1, n + 1):\n    if i % 15 == 0:\n        out.append('FizzBuzz')\n    elif i % 3 == 0:\n        out.append('Fizz')\n    elif i % 5 == 0:\n        out.append('Buzz')\n    else:\n        out.append(str(i))\nreturn out"),
    ("running_total_{noun}", "values", "Return the cumulative sums of the {noun}.", "total = 0\nresult = []\nfor v in values:\n    total += v\n    result.append(total)\nreturn result"),
    ("clamp_{noun}", "value, low=0, high={k}", "Limit value to the closed interval [low, high].", "return max(low, min(high, value))"),
    ("flatten", "nested", "Flatten a list of lists into a single list, one level deep.", "return [x for sub in nested for x in sub]"),
    ("dedupe_{noun}", "items", "Remove repeated {noun} while keeping the first occurrence of each.", "seen = set()\nresult = []\nfor item in items:\n    if item not in seen:\n        seen.add(item)\n        result.append(item)\nreturn result"),
    ("gcd", "a, b", "Return the greatest common divisor of a and b using Euclid's algorithm.", "while b:\n    a, b = b, a % b\nreturn abs(a)"),
    ("is_prime", "n", "Return True if n is a prime number, using trial division.", "if n < 2:\n    return False\ni = 2\nwhile i * i <= n:\n    if n % i == 0:\n        return False\n    i += 1\nreturn True"),
    ("top_{noun}", "values, k={k}", "Return the k largest {noun} in descending order.", "return sorted(values, reverse=True)[:k]"),
    ("parse_{noun}_line", "line, sep='{sep}'", "Split a delimited line of {noun} into floats, skipping empty fields.", "return [float(f) for f in line.split(sep) if f.strip()]"),
    ("celsius_to_fahrenheit", "celsius", "Convert a temperature from degrees Celsius to degrees Fahrenheit.", "return celsius * 9 / 5 + 32"),
    ("moving_average_{noun}", "values, window={k}", "Return the mean of every consecutive window of the {noun}.", "if window <= 0 or window > len(values):\n    return []\nreturn [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]"),
    ("group_by_length", "words", "Group words into a dict keyed by word length.", "groups = {{}}\nfor w in words:\n    groups.setdefault(len(w), []).append(w)\nreturn groups"),
    ("binary_search", "items, target", "Return the index of target in the sorted list items, or -1 if absent.", "lo, hi = 0, len(items) - 1\nwhile lo <= hi:\n    mid = (lo + hi) // 2\n    if items[mid] == target:\n        return mid\n    if items[mid] < target:\n        lo = mid + 1\n    else:\n        hi = mid - 1\nreturn -1"),
    ("count_vowels", "text", "Return the number of vowels in text, ignoring case.", "return sum(1 for ch in text.lower() if ch in 'aeiou')"),
    ("merge_{noun}", "first, second", "Merge two dicts of {noun}; values from second win on conflicts.", "merged = dict(first)\nmerged.update(second)\nreturn merged"),
    ("percent_change_{noun}", "old, new", "Return the percentage change from old to new, rounded to {k} decimals.", "if old == 0:\n    raise ValueError('old must be non-zero')\nreturn round((new - old) / old * 100, {k})"),
]
_MODULES = _w("Small helpers for cleaning {noun} before analysis.|Utility functions used by the reporting scripts.|Pure functions for the data validation step.|Helpers shared by the command line tools.|Basic list and string utilities with no dependencies.")


def code_function(r: random.Random, spec: tuple[str, str, str, str]) -> tuple[str, str]:
    """(signature plus docstring, indented body), the split a HumanEval-style target uses."""
    slots = {"noun": r.choice(_NOUNS), "k": r.randint(2, 9), "sep": r.choice((",", ";", "|", "\\t"))}
    name, args, doc, body = (part.format(**slots) for part in spec)
    prompt = f'def {name}({args}):\n    """{doc}"""\n'
    return prompt, "".join(f"    {line}\n" for line in body.split("\n"))


def _code_doc(r: random.Random) -> str:
    funcs = [code_function(r, s) for s in r.sample(CODE_SPECS, r.randint(1, 4))]
    head = r.choice(_MODULES).format(noun=r.choice(_NOUNS))
    head = f'"""{head}"""' if r.random() < 0.5 else f"# {head}"
    return head + "\n\n\n" + "\n\n".join(p + s for p, s in funcs)


# ---------------------------------------------------------------- medicine
_CONDITIONS = [  # condition, symptoms, drug, dose, key finding
    ("community-acquired pneumonia", "productive cough, fever and pleuritic chest pain", "amoxicillin", "1 g orally three times daily for 5 days", "chest radiograph showed right lower lobe consolidation"),
    ("type 2 diabetes mellitus", "polyuria, polydipsia and fatigue", "metformin", "500 mg orally twice daily with meals, titrated to 1 g twice daily", "HbA1c was 68 mmol/mol"),
    ("essential hypertension", "occasional morning headaches", "amlodipine", "5 mg orally once daily", "ambulatory blood pressure averaged 152/94 mmHg"),
    ("acute cystitis", "dysuria, urinary frequency and suprapubic discomfort", "nitrofurantoin", "100 mg modified-release orally twice daily for 3 days", "urine dipstick was positive for nitrites and leukocyte esterase"),
    ("acute asthma exacerbation", "wheeze, chest tightness and nocturnal cough", "prednisolone", "40 mg orally once daily for 5 days", "peak expiratory flow was 60% of predicted"),
    ("atrial fibrillation", "palpitations and exertional breathlessness", "apixaban", "5 mg orally twice daily", "the ECG showed an irregularly irregular rhythm without P waves"),
    ("iron deficiency anaemia", "fatigue, pallor and breathlessness on exertion", "ferrous sulfate", "200 mg orally once daily", "haemoglobin was 94 g/L with a low ferritin"),
    ("primary hypothyroidism", "weight gain, cold intolerance and constipation", "levothyroxine", "50 micrograms orally once daily before breakfast", "TSH was raised at 11.2 mU/L with a low free T4"),
    ("acute gout", "a hot, swollen first metatarsophalangeal joint", "colchicine", "500 micrograms orally two to four times daily", "serum urate was 0.52 mmol/L"),
    ("heart failure with reduced ejection fraction", "orthopnoea, ankle oedema and exertional dyspnoea", "furosemide", "40 mg orally once each morning", "echocardiography showed an ejection fraction of 32%"),
    ("migraine without aura", "unilateral throbbing headache with photophobia and nausea", "sumatriptan", "50 mg orally at onset, repeated once after 2 hours if needed", "neurological examination was normal"),
    ("lower limb cellulitis", "spreading erythema, warmth and tenderness over the shin", "flucloxacillin", "500 mg orally four times daily for 7 days", "C-reactive protein was 86 mg/L"),
    ("deep vein thrombosis", "unilateral calf swelling and tenderness", "rivaroxaban", "15 mg orally twice daily for 21 days, then 20 mg once daily", "compression ultrasound confirmed a popliteal vein thrombus"),
    ("gastro-oesophageal reflux disease", "retrosternal burning after meals and acid regurgitation", "omeprazole", "20 mg orally once daily for 4 weeks", "there were no alarm features such as weight loss or dysphagia"),
    ("major depressive disorder", "low mood, anhedonia and early morning waking", "sertraline", "50 mg orally once daily", "the PHQ-9 score was 17"),
]
_MED_NOTE = [
    "Past medical history includes {pmh}.", "Allergies: {allergy}.", "Current medications were reconciled with the pharmacy record.",
    "Observations: temperature {temp} °C, heart rate {hr} bpm, blood pressure {sbp}/{dbp} mmHg, oxygen saturation {spo2}% on room air.",
    "On examination, {exam}.", "Investigations: {finding}.", "Renal function: eGFR {egfr} mL/min/1.73m2, so no dose adjustment is required.",
    "Counselled on {counsel}.", "Review in {wk} weeks, or sooner if {red}.", "Safety-netting advice was given and documented.",
    "Differential diagnosis considered {other}, which is less likely given the history.", "Full blood count and electrolytes were requested.",
]
_MED_INFO = [
    "Patients typically present with {sym}.", "The diagnosis is supported when {finding}.", "First-line treatment is {drug} {dose}.",
    "Common adverse effects of {drug} include {ae}.", "Clinicians should monitor {monitor} during therapy.", "Refer urgently if {red}.",
    "Risk factors include {pmh}, smoking and a family history of the condition.", "Dose reduction of {drug} may be needed in renal or hepatic impairment.",
    "Non-pharmacological management includes {counsel}.", "{Other} should be excluded before the diagnosis is made.",
    "In pregnancy, specialist advice should be sought before prescribing {drug}.", "Most patients improve within {wk} weeks of starting treatment.",
]
_PMH = _w("hypertension|type 2 diabetes|chronic kidney disease stage 3|osteoarthritis|COPD|hyperlipidaemia|previous myocardial infarction|obesity")
_EXAM = _w("the chest was clear with normal heart sounds|there was mild tenderness in the epigastrium|the abdomen was soft and non-tender|there was bilateral pitting oedema to the mid-calf|the patient appeared well hydrated and alert|crackles were heard at the right base")
_COUNSEL = _w("smoking cessation and alcohol reduction|regular exercise and weight loss|adherence to the medication schedule|hydration and rest|home blood glucose monitoring|inhaler technique")
_RED = _w("breathlessness worsens|chest pain develops|a fever above 38.5 °C persists|confusion or drowsiness occurs|there is blood in the stool|symptoms fail to improve after 48 hours")
_AE = _w("nausea and diarrhoea|dizziness and headache|rash and pruritus|fatigue and insomnia|dyspepsia|peripheral oedema")
_MONITOR = _w("renal function and serum potassium|liver function tests|blood pressure and heart rate|full blood count|thyroid function every 6 to 8 weeks|blood glucose")
_ALLERGY = _w("no known drug allergies|penicillin (rash)|sulfonamides|codeine (vomiting)")


def _medicine_doc(r: random.Random) -> str:
    cond, sym, drug, dose, finding = r.choice(_CONDITIONS)
    s = dict(cond=cond, Cond=cond[0].upper() + cond[1:], sym=sym, drug=drug, dose=dose, finding=finding, pmh=r.choice(_PMH),
             allergy=r.choice(_ALLERGY), temp=round(r.uniform(36.4, 39.4), 1), hr=r.randint(58, 118), sbp=r.randint(104, 168),
             dbp=r.randint(62, 102), spo2=r.randint(91, 99), exam=r.choice(_EXAM), egfr=r.randint(45, 95), counsel=r.choice(_COUNSEL),
             wk=r.randint(1, 6), red=r.choice(_RED), ae=r.choice(_AE), monitor=r.choice(_MONITOR))
    s["other"] = r.choice([c[0] for c in _CONDITIONS if c[0] != cond])
    s["Other"] = s["other"][0].upper() + s["other"][1:]
    if r.random() < 0.55:
        age, sex = r.randint(19, 88), r.choice(("man", "woman"))
        head = f"{r.choice(_w('Clinical note|GP consultation|Emergency department note|Outpatient clinic letter'))}. {age}-year-old {sex} presenting with {r.randint(2, 14)} days of {sym}."
        tail = f"Impression: {cond}. Plan: start {drug} {dose}."
        return " ".join([head, *(t.format(**s) for t in r.sample(_MED_NOTE, r.randint(2, 8))), tail])
    head = f"{s['Cond']} is a common diagnosis in {r.choice(_w('primary care|general medicine|emergency medicine|older adults'))}."
    return " ".join([head, *(t.format(**s) for t in r.sample(_MED_INFO, r.randint(3, 10)))])


# ---------------------------------------------------------------- law
_PARTIES = [("the Landlord", "the Tenant"), ("the Licensor", "the Licensee"), ("the Supplier", "the Customer"), ("the Employer", "the Employee"), ("the Seller", "the Buyer"), ("the Lender", "the Borrower")]
_CLAUSES = [
    "{A} shall indemnify and hold harmless {B} against all losses, liabilities and costs arising from any breach of this Agreement.",
    "Either party may terminate this Agreement by giving not less than {days} days' written notice to the other party.",
    "{B} shall pay each invoice within {days} days of receipt, and late payments shall accrue interest at {pct}% per annum above the base rate.",
    "Neither party shall be liable for any failure or delay in performance caused by force majeure, including acts of God, war, epidemic or governmental action.",
    "This Agreement shall be governed by and construed in accordance with the laws of {jur}, and the parties submit to the exclusive jurisdiction of its courts.",
    "{B} shall keep confidential all Confidential Information disclosed by {A} and shall not disclose it to any third party without prior written consent.",
    "The aggregate liability of {A} under or in connection with this Agreement shall not exceed {amount}.",
    "No amendment or variation of this Agreement shall be effective unless made in writing and signed by the authorised representatives of both parties.",
    "If any provision of this Agreement is held invalid or unenforceable, the remaining provisions shall continue in full force and effect.",
    "{B} may not assign, novate or sub-license any of its rights hereunder without the prior written consent of {A}, such consent not to be unreasonably withheld.",
    "Any notice under this Agreement shall be in writing and delivered by hand, by registered post or by email to the address set out in Schedule {sched}.",
    "Failure by either party to exercise any right or remedy shall not constitute a waiver of that right or remedy.",
    "This Agreement constitutes the entire agreement between the parties and supersedes all prior representations, warranties and understandings.",
    "{A} warrants that the Goods shall conform to their specification and be free from material defects for a period of {months} months from delivery.",
]
_STATUTE = [
    "In this section, \"{term}\" means {defn}.", "A person who {conduct} commits an offence.",
    "It is a defence for a person charged with an offence under subsection ({sub}) to prove that they took all reasonable precautions and exercised all due diligence.",
    "The Secretary of State may by regulations prescribe the form and content of any notice served under this section.",
    "Proceedings for an offence under this section may not be instituted except by or with the consent of the Director of Public Prosecutions.",
    "A person guilty of an offence under this section is liable on summary conviction to a fine not exceeding level {level} on the standard scale, or to imprisonment for a term not exceeding {months} months, or to both.",
    "Nothing in this section affects any right of action in tort or in contract.", "This section applies only to acts done on or after the commencement date.",
    "Where an offence under this section is committed by a body corporate with the consent of an officer, that officer as well as the body corporate is guilty of the offence.",
]
_COURT = [
    "The appellant contends that the trial judge erred in law in holding that {issue}.", "In our judgment, that submission cannot succeed.",
    "The question is whether a reasonable person in the position of the {role} would have foreseen the risk of harm.",
    "As Lord {judge} observed in {case}, the court must construe the words used in their documentary, factual and commercial context.",
    "The respondent relied on the decision in {case2}, but that authority is plainly distinguishable on its facts.",
    "We are satisfied that the duty of care was breached and that the breach caused the loss claimed.",
    "The burden of proof lies on the claimant, and the standard is the balance of probabilities.",
    "The contract must be read as a whole, and the clause in question cannot be construed in isolation.",
    "The limitation period began to run when the claimant first had knowledge of the material facts.",
    "Damages are assessed so as to put the innocent party in the position it would have occupied had the contract been performed.",
    "The equitable remedy of specific performance is discretionary and will not be granted where damages are an adequate remedy.",
]
_TERMS = [("premises", "any land, building or vehicle used for the purposes of a trade or business"), ("relevant record", "any document, in whatever form, required to be kept under this Act"), ("dangerous article", "any article likely to cause serious injury to a person")]
_CONDUCT = _w("knowingly or recklessly makes a false statement in an application under this Act|obstructs an authorised officer in the exercise of powers conferred by this Part|fails without reasonable excuse to comply with a notice under section {s}|sells or supplies a dangerous article to a person under the age of eighteen")
_ISSUES = _w("the exclusion clause was incorporated into the contract|no duty of care was owed to the claimant|the notice of termination was validly served|the covenant in restraint of trade was enforceable|the misrepresentation induced the contract")


def _case(r: random.Random) -> str:
    return f"{r.choice(SURNAMES)} v {r.choice(SURNAMES)} {r.choice(('Ltd', 'plc', 'Holdings Ltd', ''))}".strip() + f" [{r.randint(1955, 2021)}] {r.randint(1, 3)} {r.choice(('AC', 'QB', 'WLR', 'All ER'))} {r.randint(10, 990)}"


def _law_doc(r: random.Random) -> str:
    a, b = r.choice(_PARTIES)
    term, defn = r.choice(_TERMS)
    s = dict(A=a, B=b, days=r.choice((7, 14, 30, 60, 90)), pct=r.randint(2, 8), jur=r.choice(_w("England and Wales|Scotland|the State of New York|Ontario|Singapore")),
             amount=f"the total fees paid in the preceding {r.choice((6, 12, 24))} months", sched=r.randint(1, 5), months=r.choice((3, 6, 12, 24)), term=term, defn=defn,
             conduct=r.choice(_CONDUCT).format(s=r.randint(3, 90)), sub=r.randint(1, 3), level=r.randint(3, 5), issue=r.choice(_ISSUES),
             role=r.choice(_w("defendant|occupier|employer|driver|professional adviser")), judge=r.choice(SURNAMES), case=_case(r), case2=_case(r))
    kind = r.randrange(3)
    if kind == 0:
        head = f"{r.randint(2, 24)}.{r.randint(1, 9)} {r.choice(_w('Termination|Indemnity|Confidentiality|Liability|Payment|General provisions|Warranties'))}."
        body = r.sample(_CLAUSES, r.randint(2, 7))
    elif kind == 1:
        head = f"Section {r.randint(3, 140)}. {r.choice(_w('Offences relating to licences|Powers of entry and inspection|False statements|Sale of dangerous articles'))}."
        body = [f"({i}) {t}" for i, t in enumerate(r.sample(_STATUTE, r.randint(3, 7)), 1)]
    else:
        head = f"{s['case']}. {r.choice(_w('Judgment of the Court of Appeal.|Reasons for judgment.|Appeal from the High Court.'))}"
        body = r.sample(_COURT, r.randint(3, 9))
    return " ".join([head, *(t.format(**s) for t in body)])


# ---------------------------------------------------------------- cooking
_PROTEIN = _w("chicken thighs|salmon fillets|lamb shoulder|pork chops|firm tofu|chickpeas|prawns|beef brisket|halloumi")
_VEG = _w("red onions|courgettes|aubergine|butternut squash|leeks|cherry tomatoes|spinach|mushrooms|sweet potatoes|fennel")
_SPICE = _w("smoked paprika|ground cumin|coriander seeds|turmeric|garam masala|chilli flakes|dried oregano|cinnamon|star anise")
_HERB = _w("flat-leaf parsley|fresh coriander|basil leaves|chopped dill|mint|thyme sprigs|chives")
_PANTRY = _w("2 tbsp olive oil|3 garlic cloves, crushed|500 ml vegetable stock|150 ml double cream|400 ml coconut milk|2 tbsp plain flour|30 g unsalted butter|1 lemon, zested and juiced|400 g tinned tomatoes|1 tbsp honey|2 tbsp soy sauce|50 g grated parmesan|40 g toasted almonds|2 eggs|100 ml milk|1 tsp sea salt")
_STEPS = [  # in cooking order: a recipe keeps the order of the steps it draws
    "Marinate the {protein} in yoghurt, lemon and {spice} for at least {h} hours.", "Preheat the oven to {temp}°C (gas mark {gas}).",
    "Knead the dough for {m} minutes until elastic, then cover and leave to prove until doubled in size.", "Whisk the eggs with the milk and a pinch of salt until smooth.",
    "Heat {n} tablespoons of olive oil in a large frying pan over a medium heat.", "Brown the {protein} on all sides, then lift onto a plate.",
    "Add the {veg} and sauté for {m} minutes until softened and golden.", "Stir in the garlic, {spice} and {spice2}, and cook for one minute until fragrant.",
    "Deglaze the pan with a splash of white wine, scraping up the browned bits.", "Pour in the stock, bring to a simmer and cook, partly covered, for {m2} minutes.",
    "Roast the {veg} on a lined tray for {m2} minutes, turning halfway, until caramelised at the edges.",
    "Simmer the sauce until reduced by half and glossy enough to coat the back of a spoon.", "Blend until smooth, adding a splash of water to loosen if needed.",
    "Transfer to a baking dish, scatter with grated cheese and bake for {m2} minutes until bubbling.", "Season generously with salt and freshly ground black pepper.",
    "Rest the {protein} for {m} minutes before slicing.", "Fold in the {herb} and a squeeze of lemon juice just before serving.",
    "Serve warm with crusty bread, steamed rice or a crisp green salad.",
]
_TIPS = [
    "Tip: this keeps in the fridge for up to {d} days and freezes well.", "For a vegetarian version, swap the {protein} for chickpeas or firm tofu.",
    "This is a weeknight favourite: quick, comforting and made in one pan.", "Leftovers make an excellent filling for wraps the next day.",
]


def _cooking_doc(r: random.Random) -> str:
    prot, veg, sp = r.choice(_PROTEIN), r.choice(_VEG), r.sample(_SPICE, 2)
    s = dict(protein=prot, veg=veg, spice=sp[0], spice2=sp[1], herb=r.choice(_HERB), temp=r.choice((180, 190, 200, 220)), gas=r.randint(4, 7),
             n=r.randint(1, 3), m=r.randint(3, 12), m2=r.randint(15, 45), h=r.randint(1, 8), d=r.randint(2, 5))
    title = f"{r.choice(_w('Roasted|Spiced|Braised|Pan-fried|Honey-glazed|Herby|One-pot|Slow-cooked'))} {prot} with {veg} and {s['herb']}"
    ings = r.sample(_PANTRY, r.randint(3, 7))
    steps = [_STEPS[i].format(**s) for i in sorted(r.sample(range(len(_STEPS)), r.randint(3, 8)))]
    parts = [f"{title}. Serves {r.randint(2, 6)}. Prep {r.randint(5, 30)} minutes, cook {s['m2'] + 10} minutes.",
             "Ingredients: " + "; ".join([f"{r.choice((300, 500, 600, 800))} g {prot}", f"{r.choice((200, 300, 400, 500))} g {veg}", *ings]) + ".",
             "Method: " + " ".join(f"{i}. {t}" for i, t in enumerate(steps, 1))]
    if r.random() < 0.5:
        parts.append(r.choice(_TIPS).format(**s))
    return "\n".join(parts)


# ---------------------------------------------------------------- sports
_CITIES = _w("Ashford|Port Elwood|Kingsbridge|Marlow Vale|Riverton|Castlegate|Northmoor|Bayside|Eastfield|Granton|Harlow Park|Westbury")
_MASCOTS = _w("United|Rovers|Athletic|City|Wanderers|Falcons|Hornets|Comets|Titans|Rangers|Harriers|Mariners")
_FOOTBALL = [
    "{P1} opened the scoring in the {m1}th minute, curling a free kick into the top corner.", "The visitors equalised just before half-time when {P2} headed home from a corner.",
    "{P3} was shown a second yellow card in the {m2}th minute, leaving {T2} with ten men.", "Goalkeeper {P4} made a string of fine saves to keep the hosts in the game.",
    "A late penalty, converted by {P1}, sealed the points in stoppage time.", "The result lifts {T1} to {pos} in the table, {pts} points behind the leaders.",
    "Manager {P5} praised the pressing and said the squad had shown real character after the break.", "{T2} dominated possession but managed only {n} shots on target.",
    "The two sides meet again in the cup quarter-final next month.", "{P2} hit the crossbar from twenty-five yards with the last kick of the first half.",
    "The winger {P3} was substituted in the {m2}th minute with a hamstring injury.", "VAR overturned an offside decision, and the goal stood after a lengthy check.",
]
_BASKET = [
    "{P1} led all scorers with {pts2} points, {reb} rebounds and {ast} assists.", "The hosts trailed by {n} at halftime before a {run}-0 run in the third quarter turned the game.",
    "{P2} hit {threes} three-pointers, including a go-ahead jumper with {sec} seconds left.", "The bench contributed {bp} points, while the defence forced {tov} turnovers.",
    "Head coach {P5} said the team must tighten up on the defensive glass after conceding {orb} offensive rebounds.", "With the win, {T1} improve to {w}-{l} on the season.",
    "{P3} fouled out midway through the fourth quarter after a physical duel in the paint.", "{T2} shot just {fg}% from the field and went cold from beyond the arc.",
    "A thunderous dunk from {P4} on the fast break brought the arena to its feet.", "The teams meet again on Saturday in the second game of a back-to-back.",
]


def _sports_doc(r: random.Random) -> str:
    t1, t2 = r.sample([f"{c} {m}" for c in _CITIES for m in _MASCOTS], 2)
    s = {f"P{i}": f"{r.choice(NAMES)} {r.choice(SURNAMES)}" for i in range(1, 6)}
    s.update(T1=t1, T2=t2, m1=r.randint(5, 44), m2=r.randint(46, 88), pos=r.choice(("second", "third", "fifth", "seventh")), pts=r.randint(1, 12),
             n=r.randint(1, 19), pts2=r.randint(24, 44), reb=r.randint(5, 16), ast=r.randint(3, 13), run=r.randint(10, 18), threes=r.randint(3, 9),
             sec=r.randint(3, 40), bp=r.randint(18, 45), tov=r.randint(8, 22), orb=r.randint(9, 19), w=r.randint(10, 40), l=r.randint(5, 30), fg=r.randint(33, 42))
    day = r.choice(_w("Saturday|Sunday|Tuesday|Wednesday|Friday"))
    if r.random() < 0.5:
        a, b = r.randint(1, 4), r.randint(0, 3)
        a, b = max(a, b + 1), min(a, b)
        head = f"{t1} beat {t2} {a}-{b} at {r.choice(_CITIES)} Stadium on {day} in front of a crowd of {r.randint(8, 60) * 1000 + r.randint(0, 999):,}."
        body = r.sample(_FOOTBALL, r.randint(3, 9))
    else:
        a = r.randint(95, 128)
        head = f"{t1} defeated {t2} {a}-{a - r.randint(2, 18)} on {day} night, extending their winning streak to {r.randint(2, 9)} games."
        body = r.sample(_BASKET, r.randint(3, 8))
    return " ".join([head, *(t.format(**s) for t in body)])


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "math": _math_doc, "code": _code_doc, "medicine": _medicine_doc, "law": _law_doc, "cooking": _cooking_doc, "sports": _sports_doc,
}


# ---------------------------------------------------------------- writing
