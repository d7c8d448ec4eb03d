"""Shipped fact tables of the helpfulness suites ("helpfulness-mc", "helpfulness-qa"): capitals,
chemical symbols, antonyms, planets, unit conversions, calendar names and words, each checkable."""

CAPITALS: list[tuple[str, str]] = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Canada", "Ottawa"), ("Australia", "Canberra"),
    ("Brazil", "Brasília"), ("Argentina", "Buenos Aires"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Greece", "Athens"),
    ("Turkey", "Ankara"), ("Russia", "Moscow"), ("Mexico", "Mexico City"), ("Peru", "Lima"), ("Chile", "Santiago"),
    ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Hungary", "Budapest"), ("Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Switzerland", "Bern"),
    ("New Zealand", "Wellington"), ("Nigeria", "Abuja"), ("Morocco", "Rabat"), ("Cuba", "Havana"), ("Colombia", "Bogotá"),
    ("Czech Republic", "Prague"),
]
ALIASES = {"Brasília": ["Brasilia"], "Bogotá": ["Bogota"], "New Delhi": ["Delhi"]}
ELEMENTS: list[tuple[str, str]] = [
    ("oxygen", "O"), ("hydrogen", "H"), ("carbon", "C"), ("nitrogen", "N"), ("sodium", "Na"), ("potassium", "K"),
    ("iron", "Fe"), ("gold", "Au"), ("silver", "Ag"), ("copper", "Cu"), ("lead", "Pb"), ("helium", "He"),
    ("calcium", "Ca"), ("chlorine", "Cl"), ("zinc", "Zn"), ("mercury", "Hg"), ("tin", "Sn"), ("sulfur", "S"),
]
ANTONYMS: list[tuple[str, str]] = [
    ("hot", "cold"), ("tall", "short"), ("happy", "sad"), ("early", "late"), ("heavy", "light"), ("open", "closed"),
    ("full", "empty"), ("ancient", "modern"), ("generous", "stingy"), ("brave", "cowardly"), ("rough", "smooth"),
    ("wide", "narrow"), ("expand", "contract"), ("accept", "reject"), ("victory", "defeat"), ("increase", "decrease"),
]
PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
PLANET_FACTS: list[tuple[str, str]] = [
    ("Which planet is closest to the Sun?", "Mercury"), ("Which planet is the largest in the Solar System?", "Jupiter"),
    ("Which planet is known as the Red Planet?", "Mars"), ("Which planet has the most prominent ring system?", "Saturn"),
    ("Which planet is farthest from the Sun?", "Neptune"), ("Which planet do humans live on?", "Earth"),
    ("Which planet is the hottest on average?", "Venus"), ("Which planet rotates on its side?", "Uranus"),
]
UNITS: list[tuple[str, str, int]] = [  # (big unit, small unit, factor)
    ("metres", "centimetres", 100), ("kilometres", "metres", 1000), ("kilograms", "grams", 1000), ("litres", "millilitres", 1000),
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7), ("feet", "inches", 12),
    ("dozens", "items", 12),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
WORDS = ["apple", "garden", "window", "elephant", "river", "mountain", "pencil", "butterfly", "computer", "ocean",
         "library", "sandwich", "umbrella", "orchestra", "bicycle", "kitchen", "dinosaur", "telephone", "volcano", "harvest"]
