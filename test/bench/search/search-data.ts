/**
 * Customers and queries for the customer search benchmark (test/bench/search.bench.ts), generated from a seed so
 * every run searches the same shop: customer i is always the same person, in the bench's Node process (which makes
 * the queries) and in its worker (which writes the rows) alike.
 */
const FIRST = [
  "Rahul",
  "Suresh",
  "Priya",
  "Anita",
  "Rohit",
  "Amit",
  "Sunita",
  "Vijay",
  "Deepak",
  "Pooja",
  "Ramesh",
  "Kavita",
  "Sanjay",
  "Neha",
  "Manoj",
  "Geeta",
  "Arjun",
  "Lakshmi",
  "Ravi",
  "Meena",
  "Ajay",
  "Shalini",
  "Harish",
  "Rekha",
  "Mohan",
  "Divya",
  "Ashok",
  "Swati",
  "Ganesh",
  "Anjali",
  "Naveen",
  "Farhan",
  "Imran",
  "Ayesha",
  "Zubin",
  "Gurpreet",
  "Harpreet",
  "Mahesh",
  "Bhavna",
  "Prakash",
  "Sneha",
  "Kiran",
  "Dinesh",
  "Usha",
  "Venkatesh",
  "Padma",
  "Srinivas",
  "Aarti",
  "Rajesh",
  "Nisha",
  "Alok",
  "Shreya",
  "Vikram",
  "Tanvi",
  "Yusuf",
  "Salma",
  "Joseph",
  "Mary",
  "Thomas",
  "Anil",
];
const LAST = [
  "Sharma",
  "Kumar",
  "Verma",
  "Desai",
  "Patel",
  "Singh",
  "Reddy",
  "Iyer",
  "Nair",
  "Gupta",
  "Mehta",
  "Shah",
  "Joshi",
  "Rao",
  "Das",
  "Khan",
  "Chopra",
  "Malhotra",
  "Agarwal",
  "Banerjee",
  "Chatterjee",
  "Mukherjee",
  "Pillai",
  "Menon",
  "Kulkarni",
  "Deshpande",
  "Bhat",
  "Hegde",
  "Shetty",
  "Naidu",
  "Akhtar",
  "Qureshi",
  "Fernandes",
  "D'Souza",
  "Gill",
  "Sandhu",
  "Thakur",
  "Yadav",
  "Mishra",
  "Tiwari",
];
const NICK = ["Bablu", "Guddu", "Pinky", "Munna", "Chintu", "Raju", "Sonu", "Monu", "Bunty", "Dolly", "Tinku", "Pappu"];

/** A small fast PRNG (mulberry32): the same seed, the same sequence. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(list: readonly T[], next: () => number): T => list[Math.floor(next() * list.length)]!;

export interface BenchCustomer {
  name: string;
  nickname: string | null;
  phone: string;
  email: string | null;
}

/** Customer `i` of the shop: phones unique (an odd multiplier not divisible by 5 permutes the last nine digits). */
export function customerAt(i: number): BenchCustomer {
  const next = random(i + 1);
  const first = pick(FIRST, next);
  const last = pick(LAST, next);
  const nickname = next() < 0.2 ? pick(NICK, next) : null;
  const email = next() < 0.5 ? `${first}.${last.replace(/\W/g, "")}${i}@example.in`.toLowerCase() : null;
  return { name: `${first} ${last}`, nickname, phone: `+919${String((i * 7_919_993) % 1_000_000_000).padStart(9, "0")}`, email };
}

export type QueryKind = "misspelt" | "phonetic" | "phone" | "nickname" | "email";

/** A query a person might type or a recogniser might hear for one of the first `size` customers. */
export function queryFor(size: number, n: number): { kind: QueryKind; q: string } {
  const next = random(1_000_003 + n);
  const customer = customerAt(Math.floor(next() * size));
  const kinds: QueryKind[] = ["misspelt", "misspelt", "phonetic", "phonetic", "phone", "phone", "nickname", "email"];
  const kind = pick(kinds, next);
  if (kind === "phone") {
    const digits = customer.phone.slice(3);
    return { kind, q: next() < 0.5 ? digits.slice(-5) : `+91 ${digits.slice(0, 5)}-${digits.slice(5)}` };
  }
  if (kind === "email" && customer.email) return { kind, q: customer.email.slice(0, customer.email.indexOf("@") + 4) };
  if (kind === "nickname" && customer.nickname) return { kind, q: misspell(customer.nickname, next) };
  if (kind === "phonetic") return { kind: "phonetic", q: soundAlike(customer.name) };
  return {
    kind: "misspelt",
    q: customer.name
      .split(" ")
      .map((word) => misspell(word, next))
      .join(" "),
  };
}

/** One letter dropped, doubled or swapped with the next: what a typist does. */
function misspell(word: string, next: () => number): string {
  const at = 1 + Math.floor(next() * (word.length - 2));
  const edit = Math.floor(next() * 3);
  if (edit === 0) return word.slice(0, at) + word.slice(at + 1);
  if (edit === 1) return word.slice(0, at) + word[at] + word.slice(at);
  return word.slice(0, at) + (word[at + 1] ?? "") + word[at] + word.slice(at + 2);
}

/** What a recogniser hears: silent letters gone, a vowel for another ("Raul Sharma" → "Raul Sarma", "Suresh" → "Sures"). */
function soundAlike(name: string): string {
  return name
    .replace(/([aeiou])h/gi, "$1")
    .replace(/sh$/i, "s")
    .replace(/ee/g, "i")
    .replace(/w/g, "v");
}
