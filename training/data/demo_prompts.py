"""The demo log's prompts: SYNTHETIC, written from templates and word lists in this file.

Nine task families, each with easy, medium and hard prompts, phrased the way people type:
greetings and chit-chat, arithmetic and mathematics, code, translation, factual questions,
summaries, logic puzzles, writing, and analysis. Difficulty shows in the wording as it does
in real prompts: an easy prompt is short and everyday ("what's 7 x 8?", "hi!", "translate
'see you soon' into Italian"), a medium one asks for a few steps or a paragraph, a hard one
asks for a proof, a design with its trade-offs, a system with its failure modes, a long
structured analysis, or a legal clause in a language few models know.

Every prompt is built from many phrasings and topics (several thousand distinct prompts for
a few thousand draws), so that a router trained on the log generalises to prompts a person
types rather than to these templates. `PROMPT_GENERATORS[task](rng, tier)` draws one.
"""

from __future__ import annotations

import math

TASK_SHARE = {  # share of prompts per family
    "chat": 0.09, "math": 0.14, "code": 0.15, "translation": 0.10, "factual": 0.12,
    "summarisation": 0.10, "logic": 0.08, "writing": 0.10, "analysis": 0.12,
}
TIER_SHARE = {  # (easy, medium, hard) per family
    "chat": (0.80, 0.20, 0.00),
    "math": (0.45, 0.30, 0.25),
    "code": (0.40, 0.35, 0.25),
    "translation": (0.45, 0.35, 0.20),
    "factual": (0.50, 0.30, 0.20),
    "summarisation": (0.40, 0.35, 0.25),
    "logic": (0.45, 0.30, 0.25),
    "writing": (0.50, 0.30, 0.20),
    "analysis": (0.20, 0.35, 0.45),
}


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _some(rng, options, n):
    return [options[i] for i in rng.choice(len(options), size=min(n, len(options)), replace=False)]


def _casual(rng, text: str) -> str:
    """How people type short requests: sometimes lower case, sometimes without the final mark."""
    r = rng.random()
    if r < 0.15:
        text = text[0].lower() + text[1:]
    if 0.10 < r < 0.25 and text[-1] in ".?!":
        text = text[:-1]
    return text


NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jon", "Kofi", "Lena", "Maya", "Nils",
         "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Viktor", "Wen", "Yara", "Zoe"]
CITIES = ["Lisbon", "Kyoto", "Montreal", "Cape Town", "Oslo", "Buenos Aires", "Hanoi", "Edinburgh", "Marrakesh", "Seoul",
          "Vienna", "Lima", "Reykjavik", "Istanbul", "Melbourne", "Prague"]

# -- chat -------------------------------------------------------------------------------------

_GREETINGS = ["Hi", "Hello", "Hey", "Hi there", "Hello there", "Good morning", "Good afternoon", "Good evening",
              "Hey hey", "Yo", "Morning", "Hiya", "Greetings"]
_CHAT_FOLLOW = ["How are you?", "How's it going?", "How are you doing today?", "Can you help me with something?",
                "Are you there?", "What can you do?", "Who are you?", "What's your name?", "Nice to meet you.",
                "I have a quick question.", "Hope you're well.", "How was your day?", ""]
_CHAT_EASY = ["Thanks!", "Thank you so much.", "Thanks, that helped a lot.", "OK, thanks.", "Great, that worked!",
              "Perfect, thank you.", "Bye!", "See you tomorrow.", "Good night!", "Cool.", "Never mind.", "Are you a robot?",
              "Do you like music?", "What's your favourite colour?", "Tell me a joke.", "Tell me a fun fact.",
              "Tell me something interesting.", "Say something nice.", "I'm bored.", "I'm tired today.",
              "What should I have for dinner?", "Recommend a movie for tonight.", "Recommend a book for the beach.",
              "Give me a random number between 1 and 10.", "Flip a coin for me.", "What day is it today?",
              "Can you keep a secret?", "Tell me a riddle.", "What's a good podcast to listen to?",
              "Give me a fun name for my {pet}.", "Suggest a name for my {pet}.", "What's a cute name for a {pet}?",
              "Say hello to my friend {name}.", "Wish {name} a happy birthday!", "Tell {name} good luck for the exam.",
              "Make me laugh.", "What's the weather like where you are?", "Do you dream?", "Knock knock."]
_PETS = ["cat", "dog", "hamster", "rabbit", "parrot", "tortoise", "puppy", "kitten", "houseplant", "robot vacuum"]
_CHAT_MEDIUM = [
    "How can I get better at {skill}? Give me a few tips.",
    "I have a job interview for a {job} position tomorrow. Any advice?",
    "What should I pack for a week in {city} in {season}?",
    "Plan a relaxed two-day visit to {city} for me.",
    "My {relation}'s birthday is next week. What's a thoughtful gift under $50?",
    "I keep waking up at 4am. What are some things I could try to sleep better?",
    "How do I politely tell my {relation} that I can't come to the party?",
    "Give me a simple weekly workout plan for a beginner.",
    "What are some easy vegetarian dinners I can cook in 20 minutes?",
    "How do I start learning {skill} as an adult?",
]
_SKILLS = ["public speaking", "chess", "drawing", "the guitar", "Spanish", "running", "cooking", "photography", "swimming",
           "typing", "time management"]
_JOBS = ["nurse", "barista", "software developer", "teacher", "data analyst", "sales", "graphic designer", "accountant"]
_RELATIONS = ["mum", "dad", "sister", "brother", "best friend", "colleague", "partner", "grandmother", "neighbour"]
_SEASONS = ["winter", "spring", "summer", "autumn", "the rainy season"]


def chat(rng, tier):
    if tier == "easy":
        if rng.random() < 0.45:
            greeting = _pick(rng, _GREETINGS) + _pick(rng, ["!", "", ".", " :)", "!!", ","])
            follow = _pick(rng, _CHAT_FOLLOW)
            return _casual(rng, (greeting + " " + follow).strip())
        text = _pick(rng, _CHAT_EASY).format(pet=_pick(rng, _PETS), name=_pick(rng, NAMES))
        return _casual(rng, text)
    return _pick(rng, _CHAT_MEDIUM).format(skill=_pick(rng, _SKILLS), job=_pick(rng, _JOBS), city=_pick(rng, CITIES),
                                          season=_pick(rng, _SEASONS), relation=_pick(rng, _RELATIONS))


# -- math -------------------------------------------------------------------------------------

_UNITS = [("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("hours", "minutes", 60), ("minutes", "seconds", 60),
          ("kilograms", "grams", 1000), ("litres", "millilitres", 1000), ("days", "hours", 24), ("weeks", "days", 7),
          ("feet", "inches", 12), ("dollars", "cents", 100)]
_ITEMS = ["apples", "tickets", "notebooks", "stickers", "mugs", "stamps", "cookies", "pens", "marbles", "eggs", "books"]
_THEOREMS = [
    "there are infinitely many prime numbers",
    "the square root of 3 is irrational",
    "log base 2 of 3 is irrational",
    "e is irrational",
    "the harmonic series diverges",
    "every finite group of prime order is cyclic",
    "the Cauchy-Schwarz inequality holds in every inner product space",
    "a continuous function on a closed bounded interval attains its maximum",
    "the real numbers are uncountable",
    "every tree with n vertices has exactly n - 1 edges",
    "Fermat's little theorem holds",
    "the order of a subgroup divides the order of the group",
    "every planar graph can be coloured with six colours",
    "a^p - a is divisible by p for every prime p and integer a",
    "the intermediate value theorem holds for continuous functions",
    "every bounded sequence of reals has a convergent subsequence",
    "the sum of the first n cubes equals the square of the sum of the first n integers",
    "there is no rational number whose square is 12",
    "a graph is bipartite if and only if it has no odd cycle",
    "every integer greater than 1 factors uniquely into primes",
    "the set of algebraic numbers is countable",
    "a uniformly continuous function maps Cauchy sequences to Cauchy sequences",
    "the determinant of a product of matrices is the product of their determinants",
    "any two bases of a finite-dimensional vector space have the same number of elements",
    "the geometric mean of positive numbers never exceeds their arithmetic mean",
    "pi is irrational",
    "a function differentiable at a point is continuous there",
    "the Fibonacci numbers satisfy gcd(F_m, F_n) = F_gcd(m, n)",
]
_PROOF_ASKS = ["Prove that {t}.", "Give a rigorous proof that {t}.", "Show rigorously that {t}.",
               "Can you prove that {t}? Please be rigorous.", "I need a complete, formal proof that {t}.",
               "Write out a careful proof that {t}, justifying every step.", "Prove, from the definitions, that {t}.",
               "Prove that {t}, and explain where each hypothesis is used."]
_HARD_MATH = [
    "Find the exact value of the improper integral of {f} over [0, infinity), justifying each step.",
    "Find all integer solutions of {a}x + {b}y = {c}, and prove that there are no others.",
    "What is the remainder when {a}^{e} is divided by {m}? Show the modular arithmetic in full.",
    "Compute ({a} x {b} - {c}) / {m} exactly and give the result as a fraction in lowest terms, with the working.",
    "Derive the closed form of the recurrence a(n) = {p} a(n-1) - {q} a(n-2) with a(0) = 1, a(1) = {p}, and prove it by induction.",
    "Determine whether the series sum of n^{e} / {m}^n converges, and find its sum exactly.",
    "Find the eigenvalues and eigenvectors of the matrix [[{p}, 1], [1, {q}]] and prove that it is diagonalisable.",
    "Solve the differential equation y'' + {p}y' + {q}y = sin(x) with y(0) = 0, y'(0) = 1, and verify the solution.",
    "Derive the variance of the sum of {p} dependent random variables with a given covariance matrix, and prove the formula.",
    "A fair die is rolled until the running total exceeds {c}. Derive the expected number of rolls and prove your method is exact.",
    "Give a tight asymptotic bound for T(n) = {p}T(n/{q}) + n^2 and prove it with the substitution method.",
    "Find the maximum of x^{p} y^{q} subject to x + y = {m} with Lagrange multipliers and prove it is a global maximum.",
]
_FUNCTIONS = ["x^3 e^(-x)", "e^(-x^2)", "x / (e^x - 1)", "sin(x) / x", "1 / (1 + x^4)", "x e^(-2x) cos(x)", "ln(1 + x^2) / x^2"]


def math_prompt(rng, tier):
    a, b, c = (int(v) for v in rng.integers(2, 99, size=3))
    if tier == "easy":
        unit = _pick(rng, _UNITS)
        n = int(rng.integers(2, 20))
        return _casual(rng, _pick(rng, [
            f"What is {a} + {b}?", f"What's {a} plus {b}?", f"{a} + {b} = ?", f"Add {a} and {b}.",
            f"What is {a + b} minus {b}?", f"Calculate {a + b} - {a}.", f"What is {n} times {a % 12 + 2}?",
            f"what's {n} x {b % 12 + 2}", f"What is {n * (a % 9 + 2)} divided by {a % 9 + 2}?",
            f"What's {5 * (a % 19 + 1)}% of {10 * (b % 20 + 1)}?", f"Convert {n} {unit[0]} to {unit[1]}.",
            f"How many {unit[1]} are in {n} {unit[0]}?", f"Is {a} an even number?", f"Is {b} odd or even?",
            f"What is the square of {n}?", f"What's {n} squared?", f"What is the square root of {n * n}?",
            f"Round {a}.{b} to the nearest whole number.", f"What's half of {2 * a}?", f"Double {a}, please.",
            f"If I have {n} {_pick(rng, _ITEMS)} and buy {a % 10 + 1} more, how many do I have?",
            f"I had {a + n} {_pick(rng, _ITEMS)} and gave away {n}. How many are left?",
            f"Add up {a}, {b} and {c}.", f"Which is bigger, {a / 10:g} or {b / 10:g}?",
            f"What is {a} - {b}?", f"How much is {n} dozen?",
        ]))
    if tier == "medium":
        name, item = _pick(rng, NAMES), _pick(rng, _ITEMS)
        n, price = int(rng.integers(3, 15)), int(rng.integers(2, 9))
        bill = int(math.ceil(n * price / 20) * 20)
        return _pick(rng, [
            f"{name} buys {n} {item} at ${price} each and pays with ${bill}. How much change does {name} get?",
            f"A train travels {a * 5} km in {n % 5 + 2} hours. What is its average speed, and how long would {b * 5} km take?",
            f"Solve for x: {n}x + {a} = {n * b + a}.",
            f"Solve the system x + y = {a + b}, x - y = {a - b}.",
            f"A shirt costs ${a + 20} and is on sale for {5 * (n % 6 + 2)}% off. What is the sale price?",
            f"The average of four numbers is {a}. Three of them are {b}, {c} and {a}. What is the fourth?",
            f"What is the area of a circle with a radius of {n} cm? Give the answer to two decimal places.",
            f"Find the derivative of {n}x^3 - {a}x^2 + {b}x - {c}.",
            f"I invest ${a * 100} at {n % 6 + 2}% simple interest per year. How much interest do I earn in {n % 4 + 2} years?",
            f"What is the probability of rolling a total of {n % 9 + 3} with two fair dice?",
            f"A recipe for {n % 4 + 2} people needs {a * 10} g of flour. How much do I need for {n % 4 + 5} people?",
            f"If {n} workers build a wall in {a % 10 + 4} days, how long would {n + 2} workers take at the same rate?",
            f"Simplify the fraction {a * n}/{b * n} and write it as a decimal.",
            f"The price of a ticket rose from ${a} to ${a + n}. What is the percentage increase?",
        ])
    return _pick(rng, [
        _pick(rng, _PROOF_ASKS).format(t=_pick(rng, _THEOREMS)),
        _pick(rng, _PROOF_ASKS).format(t=_pick(rng, _THEOREMS)),
        _pick(rng, _HARD_MATH).format(f=_pick(rng, _FUNCTIONS), a=a * 37 + 11, b=b * 13 + 5, c=c * 101 + 7,
                                      e=int(rng.integers(20, 200)), m=int(rng.integers(101, 997)),
                                      p=int(rng.integers(2, 7)), q=int(rng.integers(2, 5))),
    ])


# -- code -------------------------------------------------------------------------------------

LANGS = ["Python", "JavaScript", "TypeScript", "Go", "Rust", "Java", "C#", "Kotlin", "Ruby", "C++", "Swift", "PHP"]
_EASY_CODE = ["reverses a string", "returns the largest number in a list", "counts the vowels in a word",
              "checks whether a number is even", "sums the digits of an integer", "removes duplicates from a list",
              "capitalises the first letter of each word", "converts Celsius to Fahrenheit", "checks if a string is a palindrome",
              "returns the factorial of n", "finds the average of an array of numbers", "counts the words in a sentence",
              "checks whether a year is a leap year", "returns the last element of a list", "joins a list of strings with commas",
              "swaps two variables", "prints the numbers from 1 to 100", "checks whether a list is empty",
              "converts a string to upper case", "returns the minimum of three numbers", "generates a random password of 8 letters"]
_EASY_HOWTO = ["sort a list", "read a text file line by line", "get the length of a string", "convert a string to an integer",
               "loop over a dictionary", "append to an array", "check if a key exists in a map", "split a string on commas",
               "get the current date", "format a number with two decimals", "comment out several lines",
               "print to the console", "round a number", "concatenate two strings", "define a constant"]
_EASY_SQL_BASH = ["Write a SQL query that counts the rows in a table called orders.",
                  "SQL: select the names of customers from Canada.",
                  "How do I list all files, including hidden ones, in a terminal?",
                  "What's the git command to create a new branch?",
                  "Write a bash one-liner that prints the current directory.",
                  "How do I undo my last git commit but keep the changes?",
                  "What does `ls -la` do?", "What does `print(len('hello'))` print in Python?",
                  "What's the difference between == and === in JavaScript?",
                  "Write a regular expression that matches a five-digit number.",
                  "How do I make a text bold in HTML?", "What is a variable in programming?",
                  "Write a SQL query that sorts products by price, highest first.",
                  "How do I install a package with pip?", "What does the CSS property margin do?"]
_MEDIUM_CODE = ["parses a CSV file into a list of dictionaries", "implements a stack with push, pop and peek",
                "validates e-mail addresses with a regular expression", "merges two sorted lists in linear time",
                "reads a JSON config file and fills in default values", "implements binary search on a sorted array",
                "paginates results from a REST API and retries on failure", "caches the results of an expensive function",
                "counts word frequencies in a large text file", "implements a simple linked list with insert and delete",
                "converts between Roman numerals and integers", "validates a Sudoku board",
                "throttles calls to a function to once per second", "flattens an arbitrarily nested list"]
_MEDIUM_CODE_ASKS = ["Write a {lang} module that {task}, with docstrings and error handling.",
                     "Write a {lang} class that {task}, with a few unit tests.",
                     "Can you write {lang} code that {task}? Include tests.",
                     "In {lang}, implement a function that {task} and explain its time complexity.",
                     "Refactor my {lang} code that {task} so it is easier to test, and add type hints or comments."]
_MEDIUM_CODE_OTHER = ["My {lang} script crashes with a null reference error when the input file is empty. How do I handle that case properly?",
                      "Write a SQL query that returns the top 5 customers by total order value in 2023, with their order counts.",
                      "Write a small REST endpoint in {framework} that creates a user and validates the request body.",
                      "Explain the difference between a process and a thread, with an example in {lang}.",
                      "Write unit tests for a function that calculates shipping costs by weight and destination.",
                      "Convert this nested loop into a list comprehension and explain whether it is faster.",
                      "How do I read environment variables safely in {lang} and fail with a clear message when one is missing?",
                      "Write a Dockerfile for a small {framework} web app with a separate build stage."]
_FRAMEWORKS = ["Flask", "FastAPI", "Express", "Django", "Spring Boot", "Rails", "ASP.NET", "Gin"]
_HARD_SYSTEMS = ["a lock-free multi-producer multi-consumer queue", "an LRU cache with O(1) operations and TTL expiry",
                 "a B-tree with deletion and rebalancing", "Paxos-based replication for a key-value store",
                 "a garbage collector for a toy language using tri-colour marking", "a regular-expression engine with linear-time matching",
                 "a query planner for a small SQL dialect with join reordering", "a CRDT for collaborative text editing",
                 "a multi-version concurrency control storage engine", "a work-stealing thread-pool scheduler",
                 "a memory allocator with size classes and thread-local caches", "an interpreter for a Lisp with closures and tail calls",
                 "an approximate nearest-neighbour index (HNSW) with concurrent inserts", "a distributed job queue with exactly-once processing",
                 "a log-structured merge tree with compaction", "a type checker with Hindley-Milner inference",
                 "a consistent-hashing ring with virtual nodes and rebalancing", "a two-phase commit coordinator that survives crashes",
                 "a JIT compiler for arithmetic expressions", "a time-series database with downsampling and retention"]
_HARD_REQUIREMENTS = ["It must be thread-safe and come with property-based tests.",
                      "Prove its worst-case complexity and handle every failure mode.",
                      "Benchmark it against the standard library and explain the memory layout.",
                      "Explain why it is correct under concurrent access and how you tested that.",
                      "Handle crashes and network partitions, and explain the consistency guarantees.",
                      "Include a design document covering the trade-offs you made.",
                      "It has to run in production at 100,000 operations per second with bounded memory.",
                      "Write fuzz tests and explain the invariants they check."]
_HARD_CODE_OTHER = ["Our {lang} service deadlocks once a week under heavy load, and thread dumps show two locks taken in opposite orders by a cache and a connection pool. What is going on, and how would you change the locking so that it cannot happen again?",
                    "Design and implement a plugin system for a large {lang} application with versioned interfaces, sandboxing and hot reloading; justify each design decision.",
                    "Migrate a 500,000-line {lang} monolith to services without downtime: plan the steps, the data migration, the rollback strategy and the testing at each stage.",
                    "Find the memory leak in a long-running {lang} server whose heap grows by 200 MB a day; describe the profiling strategy, the likely causes and how to verify the fix.",
                    "Write a {lang} parser and evaluator for a small language with variables, functions and recursion, with precise error messages and tests for every rule."]


def code(rng, tier):
    lang = _pick(rng, LANGS)
    if tier == "easy":
        return _casual(rng, _pick(rng, [
            f"Write a {lang} function that {_pick(rng, _EASY_CODE)}.",
            f"Write a {lang} function that {_pick(rng, _EASY_CODE)}.",
            f"How do I {_pick(rng, _EASY_HOWTO)} in {lang}?",
            f"Quick {lang} snippet that {_pick(rng, _EASY_CODE)}, please.",
            _pick(rng, _EASY_SQL_BASH),
        ]))
    if tier == "medium":
        if rng.random() < 0.6:
            return _pick(rng, _MEDIUM_CODE_ASKS).format(lang=lang, task=_pick(rng, _MEDIUM_CODE))
        return _pick(rng, _MEDIUM_CODE_OTHER).format(lang=lang, framework=_pick(rng, _FRAMEWORKS))
    if rng.random() < 0.7:
        system = _pick(rng, _HARD_SYSTEMS)
        ask = _pick(rng, [f"Implement {system} in {lang}.", f"Write {system} in {lang} from scratch.",
                          f"Design and implement {system} in {lang}.", f"I need {system}, written in {lang}."])
        return ask + " " + " ".join(_some(rng, _HARD_REQUIREMENTS, int(rng.integers(1, 3))))
    return _pick(rng, _HARD_CODE_OTHER).format(lang=lang)


# -- translation --------------------------------------------------------------------------------

_COMMON_LANGS = ["French", "Spanish", "German", "Italian", "Portuguese"]
_MEDIUM_LANGS = ["Polish", "Turkish", "Dutch", "Greek", "Czech", "Swedish", "Romanian", "Hungarian", "Korean", "Vietnamese"]
_RARE_LANGS = ["Icelandic", "Basque", "Swahili", "Maltese", "Welsh", "Latvian", "Georgian", "Irish", "Yoruba", "Estonian",
               "Armenian", "Faroese"]
_EASY_PHRASES = ["Good morning.", "Where is the station?", "Thank you very much.", "I would like a coffee.",
                 "How much does this cost?", "See you soon.", "Happy birthday!", "Where is the bathroom?",
                 "My name is {name}.", "I don't understand.", "Can I have the bill, please?", "I love you.",
                 "What time is it?", "Nice to meet you.", "Excuse me.", "I am lost.", "Good luck!", "The cat is black.",
                 "I like apples.", "Welcome home.", "Have a nice day.", "How are you?", "Cheers!", "I'm sorry."]
_WORDS_TO_TRANSLATE = ["dog", "house", "water", "bread", "friend", "car", "book", "school", "apple", "rain", "beach",
                       "tomorrow", "yesterday", "kitchen", "red", "happy"]
_FOREIGN = [("gracias", "Spanish"), ("danke", "German"), ("ciao", "Italian"), ("arigato", "Japanese"), ("merci", "French"),
            ("obrigado", "Portuguese"), ("hola", "Spanish"), ("tschüss", "German"), ("prego", "Italian"), ("salut", "French"),
            ("buenas noches", "Spanish"), ("auf Wiedersehen", "German"), ("por favor", "Spanish"), ("bon appétit", "French")]
_MEDIUM_SENTENCES = ["The meeting has been moved to Thursday afternoon because the client is travelling.",
                     "Please keep the receipt in case you need to return the item within thirty days.",
                     "Our quarterly revenue grew despite the supply chain problems in the spring.",
                     "Could you send me the updated invoice before the end of the week?",
                     "The museum is closed on Mondays, but guided tours run every other day at ten.",
                     "We are sorry for the delay; your order will arrive within three working days.",
                     "I would like to book a table for four people on Saturday evening, near the window.",
                     "The new software update fixes several security issues and improves battery life.",
                     "Thank you for your application; we will contact you after the first round of interviews.",
                     "Remember to water the plants twice a week while we are on holiday."]
_HARD_PASSAGES = ["Notwithstanding the foregoing, the lessee shall remain jointly and severally liable for any damage arising "
                  "from negligence, save where such damage results from force majeure.",
                  "The indemnifying party shall hold harmless the indemnified party against all claims, whether in contract, "
                  "tort or otherwise, to the fullest extent permitted by applicable law.",
                  "Any dispute arising out of or in connection with this agreement shall be finally settled by arbitration, "
                  "the seat of which shall be Geneva, and the tribunal's award shall be binding on the parties.",
                  "The data processor shall not engage a sub-processor without the prior specific written authorisation of "
                  "the controller, and shall remain fully liable for the sub-processor's obligations.",
                  "The warranty herein is exclusive and in lieu of all other warranties, express or implied, including any "
                  "implied warranty of merchantability or fitness for a particular purpose.",
                  "The patient consents to the procedure having been informed of its material risks, the reasonable "
                  "alternatives, and the consequences of declining treatment.",
                  "Heavy with the salt of evening, the river carried the last light past the drowned orchards, and nobody "
                  "on the bank would say aloud what all of them had lost.",
                  "The compressor's surge margin decreases non-linearly as inlet guide vane angle increases beyond the "
                  "calibrated envelope, which may induce rotating stall."]
_HARD_CONSTRAINTS = ["keeping the formal legal register and the defined terms",
                     "preserving the legal meaning exactly and explaining any term with no direct equivalent",
                     "keeping the rhythm and the imagery of the original",
                     "using the standard technical terminology of the field, with a glossary",
                     "so that it would be accepted by a court, noting every ambiguity"]


def translation(rng, tier):
    if tier == "easy":
        lang = _pick(rng, _COMMON_LANGS)
        phrase = _pick(rng, _EASY_PHRASES).format(name=_pick(rng, NAMES))
        word, source = _pick(rng, _FOREIGN)
        return _casual(rng, _pick(rng, [
            f"Translate into {lang}: \"{phrase}\"", f"Translate \"{phrase}\" into {lang}.",
            f"How do you say \"{phrase}\" in {lang}?", f"What is \"{_pick(rng, _WORDS_TO_TRANSLATE)}\" in {lang}?",
            f"What does \"{word}\" mean?", f"What does \"{word}\" mean in {source}?",
            f"{lang} for \"{_pick(rng, _WORDS_TO_TRANSLATE)}\"?", f"Can you translate \"{phrase}\" to {lang}?",
        ]))
    if tier == "medium":
        lang = _pick(rng, _MEDIUM_LANGS + _COMMON_LANGS)
        sentence = _pick(rng, _MEDIUM_SENTENCES)
        return _pick(rng, [f"Translate into {lang}: \"{sentence}\"",
                           f"Please translate this into {lang}, keeping it polite: \"{sentence}\"",
                           f"Translate this message for a {lang}-speaking customer: \"{sentence}\"",
                           f"How would I write this in {lang}? \"{sentence}\""])
    lang = _pick(rng, _RARE_LANGS)
    return _pick(rng, [
        f"Translate this clause into {lang}, {_pick(rng, _HARD_CONSTRAINTS)}: \"{_pick(rng, _HARD_PASSAGES)}\"",
        f"Translate the following into {lang}, {_pick(rng, _HARD_CONSTRAINTS)}. \"{_pick(rng, _HARD_PASSAGES)}\"",
        f"I need a certified-quality {lang} translation of this passage, {_pick(rng, _HARD_CONSTRAINTS)}: "
        f"\"{_pick(rng, _HARD_PASSAGES)}\"",
    ])


# -- factual ------------------------------------------------------------------------------------

_COUNTRIES = ["France", "Japan", "Canada", "Italy", "Egypt", "Brazil", "Kenya", "Spain", "India", "Mexico", "Norway",
              "Chile", "Vietnam", "Ghana", "Peru", "Germany", "Thailand", "Argentina", "Poland", "Morocco", "Sweden", "Turkey",
              "Nigeria", "Portugal", "Greece", "Indonesia", "Ireland", "Colombia", "Finland", "South Korea"]
_BOOKS = ["Romeo and Juliet", "Pride and Prejudice", "War and Peace", "1984", "The Odyssey", "Don Quixote", "Moby-Dick",
          "Frankenstein", "The Great Gatsby", "Jane Eyre", "Les Misérables", "The Little Prince", "Great Expectations"]
_ELEMENTS = ["gold", "iron", "sodium", "oxygen", "silver", "carbon", "potassium", "helium", "copper", "lead", "tin", "neon"]
_EASY_FACTS = ["How many planets are in the solar system?", "How many continents are there?", "What is the largest ocean?",
               "What is the tallest mountain in the world?", "How many days are in a week?", "What gas do plants breathe in?",
               "How many sides does a hexagon have?", "What is the freezing point of water in Celsius?",
               "Which planet is known as the red planet?", "What is the fastest land animal?", "How many hours are in a day?",
               "Who was the first person to walk on the moon?", "What is the largest mammal?", "What do bees make?",
               "How many strings does a violin have?", "What is the main ingredient of guacamole?",
               "Which is the longest river in the world?", "How many players are on a football team?",
               "What colour is an emerald?", "Who invented the telephone?", "Who discovered penicillin?",
               "When did the Second World War end?", "What is the biggest planet?", "How many bones does an adult human have?",
               "What does DNA stand for?", "What does a thermometer measure?", "Who composed the Four Seasons?"]
_MEDIUM_FACTS = ["In which year was the {treaty} signed, and by whom?",
                 "Which element has atomic number {n}, and what is it used for?",
                 "Why did the {empire} decline? Answer in a short paragraph.",
                 "Explain how {phenomenon} works, in simple terms.",
                 "What is the difference between {pair}?",
                 "What caused the {event}, and what were its main consequences?",
                 "Who was {person}, and why are they important?"]
_TREATIES = ["Treaty of Westphalia", "Magna Carta", "Treaty of Versailles", "Treaty of Tordesillas", "Peace of Augsburg",
             "Treaty of Utrecht"]
_EMPIRES = ["Roman Empire", "Ottoman Empire", "Mughal Empire", "Byzantine Empire", "Aztec Empire", "Mali Empire"]
_PHENOMENA = ["photosynthesis", "a rainbow", "the tides", "a vaccine", "inflation", "a solar eclipse", "the greenhouse effect",
              "an electric motor", "compound interest", "a refrigerator"]
_PAIRS = ["a virus and a bacterium", "weather and climate", "a comet and an asteroid", "an alligator and a crocodile",
          "a democracy and a republic", "speed and velocity", "a lake and a pond", "mitosis and meiosis"]
_EVENTS = ["French Revolution", "Great Depression", "fall of the Berlin Wall", "Black Death", "Industrial Revolution",
           "Cuban Missile Crisis"]
_PEOPLE = ["Ada Lovelace", "Ibn Battuta", "Marie Curie", "Nelson Mandela", "Galileo Galilei", "Hypatia", "Alan Turing"]
_HARD_FACTS = ["Name the {century} {role} who first described {thing}, and cite the primary source with its folio number.",
               "Which manuscript tradition preserves the earliest account of {thing}, and how do the surviving witnesses differ?",
               "Reconstruct the chronology of the {century} debate about {thing}, citing the primary sources for each claim.",
               "What did the {century} {role} who described {thing} get wrong, according to the most recent scholarship? Cite the papers."]
_CENTURIES = ["14th-century", "9th-century", "early Ming-dynasty", "Abbasid-era", "late Byzantine", "17th-century Dutch",
              "Carolingian", "Song-dynasty"]
_ROLES = ["physician", "astronomer", "cartographer", "mathematician", "botanist", "chronicler"]
_OBSCURE = ["the rete mirabile", "a lunar libration", "the Catalan atlas projection", "a negative-number rule",
            "the pulmonary circulation", "a supernova in the constellation Lupus", "the camera obscura", "a magnetic declination"]


def factual(rng, tier):
    if tier == "easy":
        country = _pick(rng, _COUNTRIES)
        return _casual(rng, _pick(rng, [
            f"What is the capital of {country}?", f"What's the capital of {country}?", f"Which continent is {country} in?",
            f"What language do people speak in {country}?", f"What currency does {country} use?",
            f"Who wrote {_pick(rng, _BOOKS)}?", f"What is the chemical symbol for {_pick(rng, _ELEMENTS)}?",
            _pick(rng, _EASY_FACTS), _pick(rng, _EASY_FACTS),
        ]))
    if tier == "medium":
        return _pick(rng, _MEDIUM_FACTS).format(treaty=_pick(rng, _TREATIES), n=int(rng.integers(20, 80)),
                                                empire=_pick(rng, _EMPIRES), phenomenon=_pick(rng, _PHENOMENA),
                                                pair=_pick(rng, _PAIRS), event=_pick(rng, _EVENTS), person=_pick(rng, _PEOPLE))
    return _pick(rng, _HARD_FACTS).format(century=_pick(rng, _CENTURIES), role=_pick(rng, _ROLES), thing=_pick(rng, _OBSCURE))


# -- summarisation --------------------------------------------------------------------------------

_NOTES = [
    "{a} reported that the {project} launch slipped by {n} weeks because the vendor missed its delivery date.",
    "The budget for {quarter} was approved, with {n}% more for marketing and a freeze on new hardware.",
    "{a} will own the migration plan and present it at the next meeting.",
    "Open questions about staffing were raised and assigned to {b}, due by {day}.",
    "The team agreed to move the weekly sync from Monday to {day}.",
    "Customer complaints about slow checkout rose {n}% after the last release.",
    "{b} proposed hiring two contractors for the {project} project; the decision was postponed.",
    "Legal flagged that the supplier contract expires at the end of {quarter} and must be renegotiated.",
    "The steering committee will review the final scope on {day}.",
    "{a} noted that the {project} pilot exceeded its target by {n} users.",
    "Security asked every team to rotate their access keys before {day}.",
    "The office move is planned for {quarter}; {b} is collecting requirements.",
    "Sales expect revenue {n}% below plan unless the {project} deal closes this month.",
    "It was agreed that no new features ship until the open incidents are fixed.",
    "{a} and {b} disagreed on whether to outsource support; the CEO asked for costed options.",
    "The hiring freeze will be lifted for engineering only, starting {day}.",
]
_SHORT_TEXTS = [
    "Hi all, the kitchen on the third floor will be closed on {day} for cleaning. Please use the one on the second floor.",
    "Reminder: the {project} demo is moved to {day} at 3pm. Same room, same link.",
    "Our store will open an hour later on {day} because of the staff training. Online orders are not affected.",
    "The printer on floor {n} is fixed. Thanks to {a} for sorting it out.",
    "{a} is on holiday until {day}; please send urgent questions about {project} to {b}.",
    "Parking will be limited next week while the car park is repainted. Consider coming by bike or bus.",
    "The quarterly survey is open until {day}. It takes about {n} minutes and is anonymous.",
    "The library will stay open until 10pm during exam week, and coffee is free after 6pm.",
]
_PROJECTS = ["Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juniper"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the 14th", "the end of the month", "next week"]
_QUARTERS = ["Q1", "Q2", "Q3", "Q4", "the spring", "the autumn"]


def _fill(rng, template: str) -> str:
    a, b = _some(rng, NAMES, 2)
    return template.format(a=a, b=b, project=_pick(rng, _PROJECTS), day=_pick(rng, _DAYS), quarter=_pick(rng, _QUARTERS),
                           n=int(rng.integers(2, 40)))


def _notes(rng, sentences: int) -> str:
    return " ".join(_fill(rng, _pick(rng, _NOTES)) for _ in range(sentences))


def summarisation(rng, tier):
    if tier == "easy":
        text = _fill(rng, _pick(rng, _SHORT_TEXTS))
        return _pick(rng, [f"Summarise in one sentence: {text}", f"TL;DR this: {text}", f"Give me the gist of this message: {text}",
                           f"Can you shorten this to one line? {text}", f"What is this email about? {text}"])
    if tier == "medium":
        notes = _notes(rng, int(rng.integers(4, 8)))
        return _pick(rng, [f"Summarise the following meeting notes in three bullet points: {notes}",
                           f"Turn these notes into a short summary for the team: {notes}",
                           f"List the action items in these notes, with owners: {notes}",
                           f"Summarise this for my manager in a few sentences: {notes}"])
    notes = _notes(rng, int(rng.integers(10, 17)))
    return _pick(rng, [
        f"Write an executive summary of this board transcript that lists every decision, its owner and its deadline, and flags contradictions: {notes}",
        f"Produce a structured summary of these notes for the CEO: decisions, owners, deadlines, risks, and every place where two statements conflict. {notes}",
        f"Read these meeting notes carefully and write a one-page brief: what was decided, what is still open, who owns what by when, and which commitments are inconsistent with the budget. {notes}",
    ])


# -- logic ----------------------------------------------------------------------------------------

_SYLLOGISMS = [("cats", "animals"), ("roses", "flowers"), ("squares", "rectangles"), ("violins", "instruments"),
               ("sparrows", "birds"), ("oaks", "trees"), ("trout", "fish"), ("sedans", "cars"), ("apples", "fruits")]
_JOBS_PUZZLE = ["a painter", "a pilot", "a baker", "a chemist", "a poet", "a judge", "a nurse", "a sailor"]


def logic(rng, tier):
    name = _pick(rng, NAMES)
    if tier == "easy":
        a, b = _pick(rng, _SYLLOGISMS)
        nums = [int(v) for v in rng.integers(1, 60, size=int(rng.integers(4, 7)))]
        start = int(rng.integers(1, 9))
        step = int(rng.integers(2, 6))
        return _casual(rng, _pick(rng, [
            f"All {a} are {b}. {name} has one of the {a}. Does {name} have one of the {b}?",
            f"If all {a} are {b}, are all {b} {a}?",
            f"Put these numbers in order, lowest first: {', '.join(map(str, nums))}.",
            f"What comes next in the sequence {start}, {start + step}, {start + 2 * step}, {start + 3 * step}?",
            f"If today is {_pick(rng, _DAYS[:5])}, what day is it the day after tomorrow?",
            f"{name} is taller than {_pick(rng, NAMES)}, who is taller than {_pick(rng, NAMES)}. Who is the shortest?",
            f"Which is the odd one out: {', '.join(_some(rng, ['apple', 'banana', 'carrot', 'cherry', 'grape', 'pear'], 3))} or a {_pick(rng, ['chair', 'shoe', 'cloud'])}?",
            f"Is the statement \"some {b} are not {a}\" true if there are {b} that are not {a}?",
        ]))
    people = 3 if tier == "medium" else int(rng.integers(5, 7))
    names = _some(rng, NAMES, people)
    roles = _some(rng, _JOBS_PUZZLE, people)
    clues = []
    for _ in range(people + (0 if tier == "medium" else int(rng.integers(3, 6)))):
        a, b = rng.choice(people, size=2, replace=False)
        clues.append(_pick(rng, [f"{names[a]} sits left of {names[b]}.", f"{names[a]} is not {roles[b]}.",
                                 f"{roles[a].capitalize()} sits next to {names[b]}.", f"{names[a]} is older than {names[b]}."]))
    if tier == "medium":
        return _pick(rng, [
            f"{people} people ({', '.join(names)}) sit in a row; their jobs are {', '.join(roles)}. " + " ".join(clues)
            + f" Who is {roles[0]}?",
            f"A farmer must take a wolf, a goat and a cabbage across a river in a boat that holds one of them at a time. "
            f"How does {name} do it?",
            "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may take one fruit from one box. "
            "Which box do you pick, and how do you relabel them?",
            f"On an island, knights always tell the truth and knaves always lie. {names[0]} says: \"{names[1]} and I are both "
            f"knaves.\" What are {names[0]} and {names[1]}?",
        ])
    return _pick(rng, [
        f"{people} people ({', '.join(names)}) sit in a row; their jobs are {', '.join(roles)}. " + " ".join(clues)
        + " Determine everyone's seat and job, and explain each deduction step by step.",
        f"{people} friends ({', '.join(names)}) each own a different pet and live on different floors. " + " ".join(clues)
        + " Work out the full arrangement, prove that it is the only one, and justify every step.",
        "Twelve coins look identical, but one is heavier or lighter than the rest. With a balance scale and only three "
        "weighings, find the odd coin and whether it is heavier or lighter. Give the complete strategy and prove it always works.",
        f"{people} prisoners ({', '.join(names)}) each get a red or blue hat and can see everyone's hat but their own. They "
        f"speak in turn, and each must guess their own colour. Devise the strategy that saves the most of them and prove it is optimal.",
    ])


# -- writing --------------------------------------------------------------------------------------

_TYPO_SENTENCES = ["I definately recieved the package yesterday.", "Their going to the beach tomorow.",
                   "The meating is at too o'clock.", "Please find attatched the report.", "Its a beautifull day.",
                   "I cant wait to sea you.", "We was late for the buss.", "Thanks for you're help."]
_SYNONYM_WORDS = ["big", "sad", "fast", "smart", "beautiful", "angry", "tired", "important", "funny", "quiet", "cold"]
_TOPICS = ["the sea", "spring", "a rainy Monday", "coffee", "the moon", "friendship", "a city at night", "snow", "my dog",
           "falling leaves", "the first day of school", "a train journey"]
_BLUNT = ["Send me the files now.", "Your report is late again.", "Stop calling me.", "Fix this today.", "That idea is bad.",
          "Answer my email.", "I need the money back."]
_PLURALS = ["child", "goose", "cactus", "person", "tooth", "leaf", "analysis", "sheep", "woman"]
_HARD_WRITING = [
    "Write a 3,000-word short story told by an unreliable narrator across three timelines, where the twist is set up in "
    "the first paragraph and every scene advances both plots.",
    "Write a persuasive essay arguing that {claim}, anticipating the three strongest objections, answering each with evidence, "
    "and keeping a consistent argumentative structure throughout.",
    "Write a grant proposal for a {field} research project: aims, background, methods, risks with mitigations, timeline and "
    "budget justification, in the style a national funding agency expects.",
    "Write the opening chapter of a novel set in {city} in 1920, with three distinct narrative voices and period-accurate "
    "detail, and explain the structural choices you made.",
    "Rewrite this technical whitepaper outline into a complete, rigorous document with definitions, assumptions, a threat model "
    "and a discussion of limitations: {field} for small hospitals.",
]
_CLAIMS = ["cities should ban private cars from their centres", "homework should be abolished in primary schools",
           "social media companies should be liable for misinformation", "nuclear power is essential to decarbonisation",
           "a four-day working week raises productivity", "voting should be compulsory"]
_FIELDS = ["machine learning", "public health", "urban planning", "renewable energy", "data privacy", "education policy"]


def writing(rng, tier):
    if tier == "easy":
        return _casual(rng, _pick(rng, [
            f"Fix the typos: \"{_pick(rng, _TYPO_SENTENCES)}\"", f"Correct the spelling in: {_pick(rng, _TYPO_SENTENCES)}",
            f"What's another word for \"{_pick(rng, _SYNONYM_WORDS)}\"?", f"Synonyms for {_pick(rng, _SYNONYM_WORDS)}?",
            f"Write a haiku about {_pick(rng, _TOPICS)}.", f"Write a two-line poem about {_pick(rng, _TOPICS)}.",
            f"Can you reword this so it sounds polite? \"{_pick(rng, _BLUNT)}\"", f"Make this sound friendlier: {_pick(rng, _BLUNT)}",
            f"What's the plural of \"{_pick(rng, _PLURALS)}\"?", f"Write a one-line birthday message for my {_pick(rng, _RELATIONS)}.",
            f"Suggest a title for a blog post about {_pick(rng, _TOPICS)}.", f"Write a short thank-you note to {_pick(rng, NAMES)}.",
            f"Give me a catchy slogan for a {_pick(rng, ['bakery', 'bike shop', 'coffee stand', 'gym', 'bookshop'])}.",
        ]))
    if tier == "medium":
        return _pick(rng, [
            f"Write a cover letter for a {_pick(rng, _JOBS)} position, highlighting teamwork and reliability.",
            "Draft an email to my landlord asking to fix the heating, polite but firm.",
            f"Write a 200-word product description for a {_pick(rng, ['reusable water bottle', 'standing desk', 'rain jacket', 'smart lamp'])}.",
            f"Write a short poem about {_pick(rng, _TOPICS)} in the style of a nursery rhyme.",
            f"Write a LinkedIn post announcing that I started a new job as a {_pick(rng, _JOBS)}.",
            f"Write a short speech for my {_pick(rng, _RELATIONS)}'s retirement party, warm and a little funny.",
            f"Rewrite this paragraph so a ten-year-old can understand it: {_notes(rng, 3)}",
        ])
    return _pick(rng, _HARD_WRITING).format(claim=_pick(rng, _CLAIMS), field=_pick(rng, _FIELDS), city=_pick(rng, CITIES))


# -- analysis -------------------------------------------------------------------------------------

_THINGS = ["cycling to work", "working from home", "electric cars", "renting a flat", "learning online", "open-plan offices",
           "solar panels", "a gap year", "buying second-hand", "a standing desk"]
_COMPARE = [("SQL", "NoSQL databases"), ("renting", "buying a home"), ("index funds", "individual stocks"),
            ("microservices", "a monolith"), ("Python", "R for data analysis"), ("trains", "planes for short trips"),
            ("agile", "waterfall project management"), ("TCP", "UDP")]
_POLICIES = ["a guaranteed jobs programme", "a carbon tax", "rent control", "a four-day working week", "free public transport",
             "a sugar tax", "raising the minimum wage", "congestion pricing", "a wealth tax", "open borders for skilled workers"]
_PLACES = ["a medium-income Asian economy", "a developing coastal country", "a large city", "a rural region",
           "an export-driven economy", "a small island state"]
_FACTORS = ["inflation", "public debt", "inequality", "housing", "public health", "emissions",
            "productivity", "migration", "political feasibility", "distributional effects"]
_SYSTEM_DESIGNS = ["a global chat service with 100 million users", "a ride-sharing dispatch system", "a video streaming platform",
                   "a multi-region object store", "a real-time fraud detection pipeline for card payments",
                   "a search engine for 10 billion documents", "a stock exchange matching engine", "a hospital records system",
                   "a notification service that sends a billion messages a day", "an online multiplayer game backend",
                   "a feature flag service used by thousands of microservices", "a metrics and alerting platform"]
_INTERVENTIONS = [("a mentoring programme", "improves student retention"), ("a new fertiliser", "raises crop yields"),
                  ("a reading app", "improves literacy in primary schools"), ("a hospital checklist", "reduces surgical infections"),
                  ("a price change", "increases subscription revenue"), ("a walking programme", "lowers blood pressure")]
_HUMANITIES = [("the causes of the French Revolution", "Marxist, revisionist and post-revisionist"),
               ("the fall of the Roman Republic", "economic, military and institutional"),
               ("the origins of the Cold War", "orthodox, revisionist and post-revisionist"),
               ("the Industrial Revolution in Britain", "demographic, institutional and cultural")]
_LITERATURE = [("Macbeth", "ambition and guilt"), ("Middlemarch", "marriage and vocation"), ("Beloved", "memory and trauma"),
               ("The Waste Land", "fragmentation"), ("Moby-Dick", "obsession"), ("Things Fall Apart", "colonialism and identity"),
               ("To the Lighthouse", "time and consciousness")]
_CRITICAL = ["social media harms teenagers' mental health", "minimum wages reduce employment", "standardised testing improves schools",
             "open-source software is less secure", "cities are better for the environment than suburbs",
             "large language models understand language"]


def analysis(rng, tier):
    if tier == "easy":
        thing = _pick(rng, _THINGS)
        return _casual(rng, _pick(rng, [f"Give me two pros and two cons of {thing}.", f"Is {thing} a good idea? One line.",
                                        f"What's one advantage of {thing}?", f"List three benefits of {thing}.",
                                        f"In a sentence, why do people like {thing}?"]))
    if tier == "medium":
        a, b = _pick(rng, _COMPARE)
        return _pick(rng, [f"Explain the main differences between {a} and {b} for a beginner.",
                           f"What are the advantages and disadvantages of {_pick(rng, _POLICIES)}? A short answer is fine.",
                           f"Compare {a} and {b} in a short table.", f"When should I choose {a} over {b}?",
                           f"Summarise the main arguments for and against {_pick(rng, _POLICIES)} in a paragraph."])
    factors = _some(rng, _FACTORS, 3)
    design = _pick(rng, _SYSTEM_DESIGNS)
    intervention, outcome = _pick(rng, _INTERVENTIONS)
    topic, schools = _pick(rng, _HUMANITIES)
    work, theme = _pick(rng, _LITERATURE)
    return _pick(rng, [
        f"What would {_pick(rng, _POLICIES)} do to {_pick(rng, _PLACES)} over the next twenty years? Cover {factors[0]}, "
        f"{factors[1]} and {factors[2]}, and weigh the strongest arguments on each side.",
        f"Is it true that {_pick(rng, _CRITICAL)}? Assess the strongest studies on both sides and where their methods fall "
        "short.",
        f"Design the architecture of {design}. Discuss data consistency, failure modes, scaling limits and the trade-offs of "
        "every major decision.",
        f"Audit the reliability of {design}: where can it fail, how would you detect each failure, and what would you "
        "change?",
        f"Plan an experiment to find out whether {intervention} {outcome}: sample size and power, randomisation, blinding, "
        "confounders and the analysis plan.",
        f"How have {schools} historians explained {topic}? Weigh their arguments against the evidence.",
        f"Discuss how {work} treats {theme}, quoting specific passages and situating your reading among the critics.",
        f"Build a threat model for {design}: assets, attackers, attack paths and a mitigation for each, ranked by risk.",
    ])


PROMPT_GENERATORS = {"chat": chat, "math": math_prompt, "code": code, "translation": translation, "factual": factual,
                     "summarisation": summarisation, "logic": logic, "writing": writing, "analysis": analysis}
TASKS = tuple(PROMPT_GENERATORS)
