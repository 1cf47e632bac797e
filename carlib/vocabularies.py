"""Class vocabularies of the benchmarks: the exact strings CaR feeds to CLIP, one per class id.

Entry ``i`` of every list is dataset class id ``i + 1`` (0 is background),
which is also how CaR paints label maps (query index + 1).

Comma-separated entries (``"person with clothes,people,human"``, ADE's
``"door, double, door"``) are **one query each**. The reference code never
splits them: the whole string is formatted into every template and embedded
once (``zeroshot_classifier`` in ``clip_as_rnn/modeling/model/clipcam.py``,
``forward_clip`` in ``clip_wrapper.py``), as CLIP-ES does. Splitting would
also be ill-defined: ADE's strings are word-split WordNet synonym sets
(``"door, double, door"``) and share words across classes (``"screen"``
occurs in four classes). So a class maps to exactly one query and the
query-to-class map is the identity; :meth:`ClassVocabulary.synonyms` splits
an entry only for display.

Sources (the ``google-research/google-research`` repository, folder
``clip_as_rnn/``), reproduced as data:

- VOC: ``data/voc.py`` ``VOC_CLASSES`` (CLIP-ES-style synonyms).
- COCO-Object: ``data/coco.py`` ``COCO_OBJECT_CLASSES``, including its typo
  ``"sknowboard"`` (kept: it is what produced the published numbers).
- Pascal Context-59: ``data/context.py`` ``PASCAL_CONTEXT_CLASSES`` and the
  thing/stuff split ``PASCAL_CONTEXT_{THING,STUFF}_CLASS_ID``.
- ADE20K-150: ``data/ade.py`` ``ADE_CLASSES`` and ``ADE_{THING,STUFF}_CLASS_ID``.
- ADE20K-full (847): ``data/ade847.py`` ``ADE_847_CLASSES`` and
  ``ADE_847_{THING,STUFF}_CLASS_ID``; the names and their order are those of
  MaskFormer's ``datasets/prepare_ade20k_full_sem_seg.py``
  ``ADE20K_SEM_SEG_FULL_CATEGORIES`` (``trainId`` 0..846), which wrote the
  ground truth (checked name by name at a spread of ids in tests/test_presets.py).
- PASCAL Context-459: ``data/pascal459.py`` ``PASCAL_459_CLASSES`` and
  ``PASCAL_459_{THING,STUFF}_CLASS_ID``; the order is the dataset's
  ``labels.txt`` (1 accordion .. 459 wool), as in FC-CLIP's
  ``pascal_ctx_459_with_prompt_eng.txt`` (whose prompt-engineered names,
  e.g. "computer case" for 62 "case", are not used).
- Display names: the datasets' official short names (VOC devkit, COCO
  2017 ``instances`` categories; Context and ADE use the first synonym, and
  ADE-847 the whole query where that first synonym is shared, e.g. its three
  "bag" classes).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Pascal VOC 2012 (20 classes) -------------------------------------------

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird avian",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair seat",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person with clothes,people,human",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor screen",
)
"""Queries for VOC class ids 1..20 (reference ``clip_as_rnn/data/voc.py``)."""

VOC_DISPLAY_NAMES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
"""The official VOC devkit class names, for legends and per-class tables."""

# --- COCO-Object (80 classes) ------------------------------------------------

COCO_OBJECT_CLASSES: tuple[str, ...] = (
    "person with clothes,people,human",
    "bicycle",
    "car",
    "motorbike",
    "aeroplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird avian",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack,bag",
    "umbrella,parasol",
    "handbag,purse",
    "necktie",
    "suitcase",
    "frisbee",
    "skis",
    "sknowboard",  # sic: the reference's spelling of "snowboard"
    "sports ball",
    "kite",
    "baseball bat",
    "glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "dessertspoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair seat",
    "sofa",
    "pottedplant",
    "bed",
    "diningtable",
    "toilet",
    "tvmonitor screen",
    "laptop",
    "mouse",
    "remote control",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hairdrier,blowdrier",
    "toothbrush",
)
"""Queries for COCO-Object class ids 1..80 (reference ``clip_as_rnn/data/coco.py``)."""

COCO_OBJECT_DISPLAY_NAMES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
"""The official COCO 2017 category names, in category order (ids 1..80 contiguous)."""

# --- Pascal Context-59 -------------------------------------------------------

CONTEXT_59_CLASSES: tuple[str, ...] = (
    "airplane",
    "bag",
    "bed",
    "bedclothes",
    "bench",
    "bicycle",
    "bird",
    "boat",
    "book",
    "bottle",
    "building",
    "bus",
    "cabinet",
    "car",
    "cat",
    "ceiling",
    "chair",
    "cloth",
    "computer",
    "cow",
    "cup",
    "curtain",
    "dog",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "horse",
    "keyboard",
    "light",
    "motorbike",
    "mountain",
    "mouse",
    "person",
    "plate",
    "platform",
    "plant",
    "road",
    "rock",
    "sheep",
    "shelves",
    "sidewalk",
    "sign",
    "sky",
    "snow",
    "sofa",
    "table",
    "track",
    "train",
    "tree",
    "truck",
    "monitor",
    "wall",
    "water",
    "window",
    "wood",
)
"""Queries for Context-59 class ids 1..59 (reference ``clip_as_rnn/data/context.py``)."""

# Indices into CONTEXT_59_CLASSES, in the reference's order (that order sets the
# query order of each pass). The reference calls the two groups "thing" and
# "stuff"; note it files door, fence and rock under stuff, and building, tree
# and track under things.
CONTEXT_59_THING_IDS: tuple[int, ...] = (
    0,
    1,
    2,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    16,
    18,
    19,
    20,
    22,
    26,
    27,
    30,
    31,
    33,
    35,
    36,
    37,
    39,
    42,
    43,
    45,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
)
CONTEXT_59_STUFF_IDS: tuple[int, ...] = (
    3,
    15,
    17,
    21,
    25,
    28,
    29,
    32,
    34,
    38,
    40,
    44,
    46,
    47,
    55,
    56,
    57,
    58,
    23,
    24,
    41,
)

# --- ADE20K-150 --------------------------------------------------------------

ADE_150_CLASSES: tuple[str, ...] = (
    "wall",
    "building, edifice",
    "sky",
    "floor, flooring",
    "tree",
    "ceiling",
    "road, route",
    "bed",
    "windowpane, window",
    "grass",
    "cabinet",
    "sidewalk, pavement",
    "person, individual, someone, somebody, mortal, soul",
    "earth, ground",
    "door, double, door",
    "table",
    "mountain, mount",
    "plant, flora, plant, life",
    "curtain, drape, drapery, mantle, pall",
    "chair",
    "car, auto, automobile, machine, motorcar",
    "water",
    "painting, picture",
    "sofa, couch, lounge",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug, carpet, carpeting",
    "field",
    "armchair",
    "seat",
    "fence, fencing",
    "desk",
    "rock, stone",
    "wardrobe, closet, press",
    "lamp",
    "bathtub, bathing, tub, bath, tub",
    "railing, rail",
    "cushion",
    "base, pedestal, stand",
    "box",
    "column, pillar",
    "signboard, sign",
    "chest, of, drawers, chest, bureau, dresser",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace, hearth, open, fireplace",
    "refrigerator, icebox",
    "grandstand, covered, stand",
    "path",
    "stairs, steps",
    "runway",
    "case, display, case, showcase, vitrine",
    "pool, table, billiard, table, snooker, table",
    "pillow",
    "screen, door, screen",
    "stairway, staircase",
    "river",
    "bridge, span",
    "bookcase",
    "blind, screen",
    "coffee, table, cocktail, table",
    "toilet, can, commode, crapper, pot, potty, stool, throne",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove, kitchen, stove, range, kitchen, range, cooking, stove",
    "palm, palm, tree",
    "kitchen, island",
    "computer, computing, machine, computing, device, data, processor,"
    " electronic, computer, information, processing, system",
    "swivel, chair",
    "boat",
    "bar",
    "arcade, machine",
    "hovel, hut, hutch, shack, shanty",
    "bus, autobus, coach, charabanc, double-decker, jitney, motorbus, motorcoach, omnibus, passenger, vehicle",
    "towel",
    "light, light, source",
    "truck, motortruck",
    "tower",
    "chandelier, pendant, pendent",
    "awning, sunshade, sunblind",
    "streetlight, street, lamp",
    "booth, cubicle, stall, kiosk",
    "television, television, receiver, television, set, tv, tv, set, idiot, box, boob, tube, telly, goggle, box",
    "airplane, aeroplane, plane",
    "dirt, track",
    "apparel, wearing, apparel, dress, clothes",
    "pole",
    "land, ground, soil",
    "bannister, banister, balustrade, balusters, handrail",
    "escalator, moving, staircase, moving, stairway",
    "ottoman, pouf, pouffe, puff, hassock",
    "bottle",
    "buffet, counter, sideboard",
    "poster, posting, placard, notice, bill, card",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer, belt, conveyor, belt, conveyer, conveyor, transporter",
    "canopy",
    "washer, automatic, washer, washing, machine",
    "plaything, toy",
    "swimming, pool, swimming, bath, natatorium",
    "stool",
    "barrel, cask",
    "basket, handbasket",
    "waterfall, falls",
    "tent, collapsible, shelter",
    "bag",
    "minibike, motorbike",
    "cradle",
    "oven",
    "ball",
    "food, solid, food",
    "step, stair",
    "tank, storage, tank",
    "trade, name, brand, name, brand, marque",
    "microwave, microwave, oven",
    "pot, flowerpot",
    "animal, animate, being, beast, brute, creature, fauna",
    "bicycle, bike, wheel, cycle",
    "lake",
    "dishwasher, dish, washer, dishwashing, machine",
    "screen, silver, screen, projection, screen",
    "blanket, cover",
    "sculpture",
    "hood, exhaust, hood",
    "sconce",
    "vase",
    "traffic, light, traffic, signal, stoplight",
    "tray",
    "ashcan, trash, can, garbage, can, wastebin, ash, bin, ash-bin, ashbin, dustbin, trash, barrel, trash, bin",
    "fan",
    "pier, wharf, wharfage, dock",
    "crt, screen",
    "plate",
    "monitor, monitoring, device",
    "bulletin, board, notice, board",
    "shower",
    "radiator",
    "glass, drinking, glass",
    "clock",
    "flag",
)
"""Queries for ADE20K-150 class ids 1..150 (reference ``clip_as_rnn/data/ade.py``)."""

# Indices into ADE_150_CLASSES, in the reference's order. Its "stuff" group
# oddly includes "apparel" and "flower", and leaves "sidewalk" and "rock" to things.
ADE_150_STUFF_IDS: tuple[int, ...] = (
    0,
    2,
    3,
    4,
    5,
    6,
    9,
    13,
    16,
    17,
    21,
    26,
    29,
    46,
    48,
    52,
    60,
    61,
    66,
    68,
    94,
    91,
    92,
    128,
    113,
)
ADE_150_THING_IDS: tuple[int, ...] = tuple(
    index for index in range(len(ADE_150_CLASSES)) if index not in set(ADE_150_STUFF_IDS)
)
"""Every ADE-150 index not in the stuff group, ascending (exactly the reference's list)."""


def _one_per_line(text: str) -> tuple[str, ...]:
    # The long vocabularies are kept one name per line, as their sources list them.
    return tuple(line.strip() for line in text.splitlines() if line.strip())


# --- ADE20K-full (847 classes) ---------------------------------------------------

ADE_847_CLASSES: tuple[str, ...] = _one_per_line("""
wall
building, edifice
sky
tree
road, route
floor, flooring
ceiling
bed
sidewalk, pavement
earth, ground
cabinet
person, individual, someone, somebody, mortal, soul
grass
windowpane, window
car, auto, automobile, machine, motorcar
mountain, mount
plant, flora, plant life
table
chair
curtain, drape, drapery, mantle, pall
door
sofa, couch, lounge
sea
painting, picture
water
mirror
house
rug, carpet, carpeting
shelf
armchair
fence, fencing
field
lamp
rock, stone
seat
river
desk
bathtub, bathing tub, bath, tub
railing, rail
signboard, sign
cushion
path
work surface
stairs, steps
column, pillar
sink
wardrobe, closet, press
snow
refrigerator, icebox
base, pedestal, stand
bridge, span
blind, screen
runway
cliff, drop, drop-off
sand
fireplace, hearth, open fireplace
pillow
screen door, screen
toilet, can, commode, crapper, pot, potty, stool, throne
skyscraper
grandstand, covered stand
box
pool table, billiard table, snooker table
palm, palm tree
double door
coffee table, cocktail table
counter
countertop
chest of drawers, chest, bureau, dresser
kitchen island
boat
waterfall, falls
stove, kitchen stove, range, kitchen range, cooking stove
flower
bookcase
controls
book
stairway, staircase
streetlight, street lamp
computer, computing machine, computing device, data processor, electronic computer, information processing system
bus, autobus, coach, charabanc, double-decker, jitney, motorbus, motorcoach, omnibus, passenger vehicle
swivel chair
light, light source
bench
case, display case, showcase, vitrine
towel
fountain
embankment
television receiver, television, television set, tv, tv set, idiot box, boob tube, telly, goggle box
van
hill
awning, sunshade, sunblind
poster, posting, placard, notice, bill, card
truck, motortruck
airplane, aeroplane, plane
pole
tower
court
ball
aircraft carrier, carrier, flattop, attack aircraft carrier
buffet, counter, sideboard
hovel, hut, hutch, shack, shanty
apparel, wearing apparel, dress, clothes
minibike, motorbike
animal, animate being, beast, brute, creature, fauna
chandelier, pendant, pendent
step, stair
booth, cubicle, stall, kiosk
bicycle, bike, wheel, cycle
doorframe, doorcase
sconce
pond
trade name, brand name, brand, marque
bannister, banister, balustrade, balusters, handrail
bag
traffic light, traffic signal, stoplight
gazebo
escalator, moving staircase, moving stairway
land, ground, soil
board, plank
arcade machine
eiderdown, duvet, continental quilt
bar
stall, stand, sales booth
playground
ship
ottoman, pouf, pouffe, puff, hassock
ashcan, trash can, garbage can, wastebin, ash bin, ash-bin, ashbin, dustbin, trash barrel, trash bin
bottle
cradle
pot, flowerpot
conveyer belt, conveyor belt, conveyer, conveyor, transporter
train, railroad train
stool
lake
tank, storage tank
ice, water ice
basket, handbasket
manhole
tent, collapsible shelter
canopy
microwave, microwave oven
barrel, cask
dirt track
beam
dishwasher, dish washer, dishwashing machine
plate
screen, crt screen
ruins
washer, automatic washer, washing machine
blanket, cover
plaything, toy
food, solid food
screen, silver screen, projection screen
oven
stage
beacon, lighthouse, beacon light, pharos
umbrella
sculpture
aqueduct
container
scaffolding, staging
hood, exhaust hood
curb, curbing, kerb
roller coaster
horse, equus caballus
catwalk
glass, drinking glass
vase
central reservation
carousel
radiator
closet
machine
pier, wharf, wharfage, dock
fan
inflatable bounce game
pitch
paper
arcade, colonnade
hot tub
helicopter
tray
partition, divider
vineyard
bowl
bullring
flag
pot
footbridge, overcrossing, pedestrian bridge
shower
bag, traveling bag, travelling bag, grip, suitcase
bulletin board, notice board
confessional booth
trunk, tree trunk, bole
forest
elevator door
laptop, laptop computer
instrument panel
bucket, pail
tapestry, tapis
platform
jacket
gate
monitor, monitoring device
telephone booth, phone booth, call box, telephone box, telephone kiosk
spotlight, spot
ring
control panel
blackboard, chalkboard
air conditioner, air conditioning
chest
clock
sand dune
pipe, pipage, piping
vault
table football
cannon
swimming pool, swimming bath, natatorium
fluorescent, fluorescent fixture
statue
loudspeaker, speaker, speaker unit, loudspeaker system, speaker system
exhibitor
ladder
carport
dam
pulpit
skylight, fanlight
water tower
grill, grille, grillwork
display board
pane, pane of glass, window glass
rubbish, trash, scrap
ice rink
fruit
patio
vending machine
telephone, phone, telephone set
net
backpack, back pack, knapsack, packsack, rucksack, haversack
jar
track
magazine
shutter
roof
banner, streamer
landfill
post
altarpiece, reredos
hat, chapeau, lid
arch, archway
table game
bag, handbag, pocketbook, purse
document, written document, papers
dome
pier
shanties
forecourt
crane
dog, domestic dog, canis familiaris
piano, pianoforte, forte-piano
drawing
cabin
ad, advertisement, advertizement, advertising, advertizing, advert
amphitheater, amphitheatre, coliseum
monument
henhouse
cockpit
heater, warmer
windmill, aerogenerator, wind generator
pool
elevator, lift
decoration, ornament, ornamentation
labyrinth
text, textual matter
printer
mezzanine, first balcony
mattress
straw
stalls
patio, terrace
billboard, hoarding
bus stop
trouser, pant
console table, console
rack
notebook
shrine
pantry
cart
steam shovel
porch
postbox, mailbox, letter box
figurine, statuette
recycling bin
folding screen
telescope
deck chair, beach chair
kennel
coffee maker
altar, communion table, lord's table
fish
easel
artificial golf green
iceberg
candlestick, candle holder
shower stall, shower bath
television stand
wall socket, wall plug, electric outlet, electrical outlet, outlet, electric receptacle
skeleton
grand piano, grand
candy, confect
grille door
pedestal, plinth, footstall
jersey, t-shirt, tee shirt
shoe
gravestone, headstone, tombstone
shanty
structure
rocking chair, rocker
bird
place mat
tomb
big top
gas pump, gasoline pump, petrol pump, island dispenser
lockers
cage
finger
bleachers
ferris wheel
hairdresser chair
mat
stands
aquarium, fish tank, marine museum
streetcar, tram, tramcar, trolley, trolley car
napkin, table napkin, serviette
dummy
booklet, brochure, folder, leaflet, pamphlet
sand trap
shop, store
table cloth
service station
coffin
drawer
cages
slot machine, coin machine
balcony
volleyball court
table tennis
control table
shirt
merchandise, ware, product
railway
parterre
chimney
can, tin, tin can
tanks
fabric, cloth, material, textile
alga, algae
system
map
greenhouse
mug
barbecue
trailer
toilet tissue, toilet paper, bathroom tissue
organ
dishrag, dishcloth
island
keyboard
trench
basket, basketball hoop, hoop
steering wheel, wheel
pitcher, ewer
goal
bread, breadstuff, staff of life
beds
wood
file cabinet
newspaper, paper
motorboat
rope
guitar
rubble
scarf
barrels
cap
leaves
control tower
dashboard
bandstand
lectern
switch, electric switch, electrical switch
baseboard, mopboard, skirting board
shower room
smoke
faucet, spigot
bulldozer
saucepan
shops
meter
crevasse
gear
candelabrum, candelabra
sofa bed
tunnel
pallet
wire, conducting wire
kettle, boiler
bidet
baby buggy, baby carriage, carriage, perambulator, pram, stroller, go-cart, pushchair, pusher
music stand
pipe, tube
cup
parking meter
ice hockey rink
shelter
weeds
temple
patty, cake
ski slope
panel
wallet
wheel
towel rack, towel horse
roundabout
canister, cannister, tin
rod
soap dispenser
bell
canvas
box office, ticket office, ticket booth
teacup
trellis
workbench
valley, vale
toaster
knife
podium
ramp
tumble dryer
fireplug, fire hydrant, plug
gym shoe, sneaker, tennis shoe
lab bench
equipment
rocky formation
plastic
calendar
caravan
check-in-desk
ticket counter
brush
mill
covered bridge
bowling alley
hanger
excavator
trestle
revolving door
blast furnace
scale, weighing machine
projector
soap
locker
tractor
stretcher
frame
grating
alembic
candle, taper, wax light
barrier
cardboard
cave
puddle
tarp
price tag
watchtower
meters
light bulb, lightbulb, bulb, incandescent lamp, electric light, electric-light bulb
tracks
hair dryer
skirt
viaduct
paper towel
coat
sheet
fire extinguisher, extinguisher, asphyxiator
water wheel
pottery, clayware
magazine rack
teapot
microphone, mike
support
forklift
canyon
cash register, register
leaf, leafage, foliage
remote control, remote
soap dish
windshield, windscreen
cat
cue, cue stick, pool cue, pool stick
vent, venthole, vent-hole, blowhole
videos
shovel
eaves
antenna, aerial, transmitting aerial
shipyard
hen, biddy
traffic cone
washing machines
truck crane
cds
niche
scoreboard
briefcase
boot
sweater, jumper
hay
pack
bottle rack
glacier
pergola
building materials
television camera
first floor
rifle
tennis table
stadium
safety belt
cover
dish rack
synthesizer
pumpkin
gutter
fruit stand
ice floe, floe
handle, grip, handgrip, hold
wheelchair
mousepad, mouse mat
diploma
fairground ride
radio
hotplate
junk
wheelbarrow
stream
toll plaza
punching bag
trough
throne
chair desk
weighbridge
extractor fan
hanging clothes
dish, dish aerial, dish antenna, saucer
alarm clock, alarm
ski lift
chain
garage
mechanical shovel
wine rack
tramway
treadmill
menu
block
well
witness stand
branch
duck
casserole
frying pan
desk organizer
mast
spectacles, specs, eyeglasses, glasses
service elevator
dollhouse
hammock
clothes hanging
photocopier
notepad
golf cart
footpath
cross
baptismal font
boiler
skip
rotisserie
tables
water mill
helmet
cover curtain
brick
table runner
ashtray
street box
stick
hangers
cells
urinal
centerpiece
portable fridge
dvds
golf club
skirting board
water cooler
clipboard
camera, photographic camera
pigeonhole
chips
food processor
post box
lid
drum
blender
cave entrance
dental chair
obelisk
canoe
mobile
monitors
pool ball
cue rack
baggage carts
shore
fork
paper filer
bicycle rack
coat rack
garland
sports bag
fish tank
towel dispenser
carriage
brochure
plaque
stringer
iron
spoon
flag pole
toilet brush
book stand
water faucet, water tap, tap, hydrant
ticket office
broom
dvd
ice bucket
carapace, shell, cuticle, shield
tureen
folders
chess
root
sewing machine
model
pen
violin
sweatshirt
recycling materials
mitten
chopping board, cutting board
mask
log
mouse, computer mouse
grill
hole
target
trash bag
chalk
sticks
balloon
score
hair spray
roll
runner
engine
inflatable glove
games
pallets
baskets
coop
dvd player
rocking horse
buckets
bread rolls
shawl
watering can
spotlights
post-it
bowls
security camera
runner cloth
lock
alarm, warning device, alarm system
side
roulette
bone
cutlery
pool balls
wheels
spice rack
plant pots
towel ring
bread box
video
funfair
breads
tripod
ironing board
skimmer
hollow
scratching post
tricycle
file box
mountain pass
tombstones
cooker
card game, cards
golf bag
towel paper
chaise lounge
sun
toilet paper holder
rake
key
umbrella stand
dartboard
transformer
fireplace utensils
sweatshirts
cellular telephone, cellular phone, cellphone, cell, mobile phone
tallboy
stapler
sauna
test tube
palette
shopping carts
tools
push button, push, button
star
roof rack
barbed wire
spray
ear
sponge
racket
tins
eyeglasses
file
scarfs
sugar bowl
flip flop
headstones
laptop bag
leash
climbing frame
suit hanger
floor spotlight
plate rack
sewer
hard drive
sprinkler
tools box
necklace
bulbs
steel industry
club
jack
door bars
control panel, instrument panel, control board, board, panel
hairbrush
napkin holder
office
smoke detector
utensils
apron
scissors
terminal
grinder
entry phone
newspaper stand
pepper shaker
onions
central processing unit, cpu, c p u , central processor, processor, mainframe
tape
bat
coaster
calculator
potatoes
luggage rack
salt
street number
viewpoint
sword
cd
rowing machine
plug
andiron, firedog, dog, dog-iron
pepper
tongs
bonfire
dog dish
belt
dumbbells
videocassette recorder, vcr
hook
envelopes
shower faucet
watch
padlock
swimming pool ladder
spanners
gravy boat
notice board
trash bags
fire alarm
ladle
stethoscope
rocket
funnel
bowling pins
valve
thermometer
cups
spice jar
night light
soaps
games table
slotted spoon
reel
scourer
sleeping robe
desk mat
dumbbell
hammer
tie
typewriter
shaker
cheese dish
sea star
racquet
butane gas cylinder
paper weight
shaving brush
sunglasses
gear shift
towel rail
adding machine, totalizer, totaliser
""")
"""Queries for ADE-847 class ids 1..847 (reference ``clip_as_rnn/data/ade847.py``
``ADE_847_CLASSES``): the WordNet synonym sets of ADE20K-full, comma-separated
with their spaces kept (unlike ADE-150's word-split strings), in the order of
the ``trainId`` s that ``prepare_ade20k_full_sem_seg.py`` (MaskFormer, FC-CLIP)
writes into the ground truth, so label ``k`` of the TIFFs is entry ``k``."""

# Indices into ADE_847_CLASSES, in the reference's order (``ADE_847_STUFF_CLASS_ID``).
# As for ADE-150, the split is the reference's: "river" and "path" are things.
ADE_847_STUFF_IDS: tuple[int, ...] = (
    0,
    2,
    3,
    4,
    5,
    8,
    9,
    12,
    15,
    16,
    22,
    24,
    33,
    47,
    54,
    368,
    31,
    195,
    118,
    134,
    136,
    53,
    143,
    90,
    435,
    546,
    624,
    111,
    304,
)
ADE_847_THING_IDS: tuple[int, ...] = tuple(
    index for index in range(len(ADE_847_CLASSES)) if index not in set(ADE_847_STUFF_IDS)
)
"""Every ADE-847 index not in the stuff group, ascending (the reference's ``ADE_847_THING_CLASS_ID``)."""

# --- PASCAL Context, full label set (459 classes) ------------------------------------

CONTEXT_459_CLASSES: tuple[str, ...] = _one_per_line("""
accordion
aeroplane
air conditioner
antenna
artillery
ashtray
atrium
baby carriage
bag
ball
balloon
bamboo weaving
barrel
baseball bat
basket
basketball backboard
bathtub
bed
bedclothes
beer
bell
bench
bicycle
binoculars
bird
bird cage
bird feeder
bird nest
blackboard
board
boat
bone
book
bottle
bottle opener
bowl
box
bracelet
brick
bridge
broom
brush
bucket
building
bus
cabinet
cabinet door
cage
cake
calculator
calendar
camel
camera
camera lens
can
candle
candle holder
cap
car
card
cart
case
casette recorder
cash register
cat
cd
cd player
ceiling
cell phone
cello
chain
chair
chessboard
chicken
chopstick
clip
clippers
clock
closet
cloth
clothes tree
coffee
coffee machine
comb
computer
concrete
cone
container
control booth
controller
cooker
copying machine
coral
cork
corkscrew
counter
court
cow
crabstick
crane
crate
cross
crutch
cup
curtain
cushion
cutting board
dais
disc
disc case
dishwasher
dock
dog
dolphin
door
drainer
dray
drink dispenser
drinking machine
drop
drug
drum
drum kit
duck
dumbbell
earphone
earrings
egg
electric fan
electric iron
electric pot
electric saw
electronic keyboard
engine
envelope
equipment
escalator
exhibition booth
extinguisher
eyeglass
fan
faucet
fax machine
fence
ferris wheel
fire extinguisher
fire hydrant
fire place
fish
fish tank
fishbowl
fishing net
fishing pole
flag
flagstaff
flame
flashlight
floor
flower
fly
foam
food
footbridge
forceps
fork
forklift
fountain
fox
frame
fridge
frog
fruit
funnel
furnace
game controller
game machine
gas cylinder
gas hood
gas stove
gift box
glass
glass marble
globe
glove
goal
grandstand
grass
gravestone
ground
guardrail
guitar
gun
hammer
hand cart
handle
handrail
hanger
hard disk drive
hat
hay
headphone
heater
helicopter
helmet
holder
hook
horse
horse-drawn carriage
hot-air balloon
hydrovalve
ice
inflator pump
ipod
iron
ironing board
jar
kart
kettle
key
keyboard
kitchen range
kite
knife
knife block
ladder
ladder truck
ladle
laptop
leaves
lid
life buoy
light
light bulb
lighter
line
lion
lobster
lock
machine
mailbox
mannequin
map
mask
mat
match book
mattress
menu
metal
meter box
microphone
microwave
mirror
missile
model
money
monkey
mop
motorbike
mountain
mouse
mouse pad
musical instrument
napkin
net
newspaper
oar
ornament
outlet
oven
oxygen bottle
pack
pan
paper
paper box
paper cutter
parachute
parasol
parterre
patio
pelage
pen
pen container
pencil
person
photo
piano
picture
pig
pillar
pillow
pipe
pitcher
plant
plastic
plate
platform
player
playground
pliers
plume
poker
poker chip
pole
pool table
postcard
poster
pot
pottedplant
printer
projector
pumpkin
rabbit
racket
radiator
radio
rail
rake
ramp
range hood
receiver
recorder
recreational machines
remote control
road
robot
rock
rocket
rocking horse
rope
rug
ruler
runway
saddle
sand
saw
scale
scanner
scissors
scoop
screen
screwdriver
sculpture
scythe
sewer
sewing machine
shed
sheep
shell
shelves
shoe
shopping cart
shovel
sidecar
sidewalk
sign
signal light
sink
skateboard
ski
sky
sled
slippers
smoke
snail
snake
snow
snowmobiles
sofa
spanner
spatula
speaker
speed bump
spice container
spoon
sprayer
squirrel
stage
stair
stapler
stick
sticky note
stone
stool
stove
straw
stretcher
sun
sunglass
sunshade
surveillance camera
swan
sweeper
swim ring
swimming pool
swing
switch
table
tableware
tank
tap
tape
tarp
telephone
telephone booth
tent
tire
toaster
toilet
tong
tool
toothbrush
towel
toy
toy car
track
train
trampoline
trash bin
tray
tree
tricycle
tripod
trophy
truck
tube
turtle
tvmonitor
tweezers
typewriter
umbrella
unknown
vacuum cleaner
vending machine
video camera
video game console
video player
video tape
violin
wakeboard
wall
wallet
wardrobe
washing machine
watch
water
water dispenser
water pipe
water skate board
watermelon
whale
wharf
wheel
wheelchair
window
window blinds
wineglass
wire
wood
wool
""")
"""Queries for Context-459 class ids 1..459 (reference ``clip_as_rnn/data/pascal459.py``
``PASCAL_459_CLASSES``): the PASCAL-Context ``labels.txt`` names in label order,
``"unknown"`` (431) included, so label ``k`` of the ``annotations_ctx459`` TIFFs is entry ``k``."""

# Indices into CONTEXT_459_CLASSES, in the reference's order (``PASCAL_459_STUFF_CLASS_ID``).
CONTEXT_459_STUFF_IDS: tuple[int, ...] = (
    6,
    67,
    85,
    92,
    96,
    111,
    157,
    160,
    186,
    188,
    210,
    228,
    258,
    277,
    278,
    323,
    325,
    329,
    333,
    359,
    365,
    381,
    386,
    439,
    444,
    457,
)
CONTEXT_459_THING_IDS: tuple[int, ...] = tuple(
    index for index in range(len(CONTEXT_459_CLASSES)) if index not in set(CONTEXT_459_STUFF_IDS)
)
"""Every Context-459 index not in the stuff group, ascending (the reference's ``PASCAL_459_THING_CLASS_ID``)."""


def _first_synonyms(queries: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(query.split(",")[0].strip() for query in queries)


def _distinct_short_names(queries: tuple[str, ...]) -> tuple[str, ...]:
    """The first synonym, or the whole query where that first synonym is shared.

    ADE-847 has three classes starting "bag" and three starting "screen";
    per-class tables are keyed by display name, so each must be distinct.
    """
    first = _first_synonyms(queries)
    counts = {name: first.count(name) for name in set(first)}
    return tuple(name if counts[name] == 1 else query for name, query in zip(first, queries))


@dataclass(frozen=True)
class ClassVocabulary:
    """One dataset's classes: the CLIP query and a short display name per class id.

    Attributes:
        name: the vocabulary's name (``"voc"``, ``"coco_object"``, ...).
        queries: the exact string fed to CLIP for each class; entry ``i`` is
            class id ``i + 1``. May hold comma-separated synonyms (one query).
        display_names: a short name per class for legends and tables.
        source: where the query strings come from.
    """

    name: str
    queries: tuple[str, ...]
    display_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.display_names):
            raise ValueError(
                f"vocabulary {self.name!r}: {len(self.queries)} queries but "
                f"{len(self.display_names)} display names; give one of each per class"
            )
        if len(set(self.queries)) != len(self.queries):
            raise ValueError(f"vocabulary {self.name!r} has duplicate queries")

    def __len__(self) -> int:
        return len(self.queries)

    def synonyms(self, index: int) -> tuple[str, ...]:
        """The comma-separated parts of query ``index`` (display only; CaR queries the whole string).

        Arguments:
            index: 0-based class index (class id - 1).

        Returns:
            the stripped, non-empty parts, in order, duplicates removed.
        """
        parts = (part.strip() for part in self.queries[index].split(","))
        return tuple(dict.fromkeys(part for part in parts if part))

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of tuples); inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "queries": list(self.queries),
            "display_names": list(self.display_names),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClassVocabulary:
        """Rebuild a vocabulary from :meth:`to_dict`'s output.

        Arguments:
            data: a dict with keys ``name``, ``queries``, ``display_names``, ``source``.

        Returns:
            the equal :class:`ClassVocabulary`.
        """
        return cls(
            name=data["name"],
            queries=tuple(data["queries"]),
            display_names=tuple(data["display_names"]),
            source=data["source"],
        )


_REFERENCE = "google-research/google-research clip_as_rnn/"

VOC = ClassVocabulary("voc", VOC_CLASSES, VOC_DISPLAY_NAMES, _REFERENCE + "data/voc.py VOC_CLASSES")
COCO_OBJECT = ClassVocabulary(
    "coco_object",
    COCO_OBJECT_CLASSES,
    COCO_OBJECT_DISPLAY_NAMES,
    _REFERENCE + "data/coco.py COCO_OBJECT_CLASSES",
)
CONTEXT_59 = ClassVocabulary(
    "context",
    CONTEXT_59_CLASSES,
    CONTEXT_59_CLASSES,
    _REFERENCE + "data/context.py PASCAL_CONTEXT_CLASSES",
)
ADE_150 = ClassVocabulary(
    "ade150",
    ADE_150_CLASSES,
    _first_synonyms(ADE_150_CLASSES),
    _REFERENCE + "data/ade.py ADE_CLASSES",
)
ADE_847 = ClassVocabulary(
    "ade847",
    ADE_847_CLASSES,
    _distinct_short_names(ADE_847_CLASSES),
    _REFERENCE + "data/ade847.py ADE_847_CLASSES",
)
CONTEXT_459 = ClassVocabulary(
    "context459",
    CONTEXT_459_CLASSES,
    CONTEXT_459_CLASSES,
    _REFERENCE + "data/pascal459.py PASCAL_459_CLASSES",
)


def shapes_vocabulary() -> ClassVocabulary:
    """ShapesWorld's object classes as a vocabulary (read from :mod:`carlib.world.classes`).

    Imported here, not at module load, so the benchmark vocabularies and
    presets stay usable even when :mod:`carlib.world` cannot be imported.

    Returns:
        a :class:`ClassVocabulary` whose queries and display names are the
        single-word class names; class id ``i + 1`` is ``queries[i]``.
    """
    from carlib.world.classes import CLASS_NAMES

    return ClassVocabulary("shapes", tuple(CLASS_NAMES), tuple(CLASS_NAMES), "carlib/world/classes.py CLASS_NAMES")


def shapes_background_words() -> tuple[str, ...]:
    """ShapesWorld's background surface names (grass, sky, ...), its CaR background words.

    Returns:
        the names from :data:`carlib.world.classes.BACKGROUND_NAMES`, in order.
    """
    from carlib.world.classes import BACKGROUND_NAMES

    return tuple(BACKGROUND_NAMES)
