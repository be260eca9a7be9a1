"""Common given names of the locales the redactor knows (en, de, fr, es, it, nl, pt, in, jp),
and capitalised words that follow "Dear" or "Name:" without being names.

A short list on purpose: it only confirms a name where the words around it are weak
evidence (a greeting, a sign-off); after "my name is" or an honorific any name counts.
"""

from __future__ import annotations

_GIVEN_NAMES = """
    Aaron Adam Adrian Aiden Alan Albert Alex Alexander Alexandra Alice Alicia Alison Amanda Amber
    Amelia Amy Andrea Andrew Angela Anna Anne Anthony Antonio Arthur Ashley Barbara Ben Benjamin
    Beth Betty Bill Bob Brandon Brenda Brian Bruce Carl Carlos Carol Caroline Catherine Charles
    Charlie Charlotte Chris Christian Christina Christine Christopher Claire Daniel Danielle David
    Deborah Dennis Diana Diane Donald Donna Dorothy Douglas Dylan Edward Elizabeth Ella Ellen
    Emily Emma Eric Ethan Eugene Evelyn Frank Gary George Grace Gregory Hannah Harold Harry
    Heather Helen Henry Isabella Jack Jacob James Jane Janet Jason Jean Jeffrey Jennifer Jeremy
    Jessica Joan John Jonathan Jordan Joseph Joshua Joyce Judith Julia Julie Justin Karen
    Katherine Kathleen Kathryn Kelly Kenneth Kevin Kimberly Kyle Laura Lauren Lawrence Linda Lisa
    Logan Louis Lucas Lucy Madison Margaret Maria Marie Mark Martha Mary Matthew Megan Melissa
    Michael Michelle Nancy Natalie Nathan Nicholas Nicole Noah Oliver Olivia Pamela Patricia
    Patrick Paul Peter Philip Rachel Ralph Raymond Rebecca Richard Robert Roger Ronald Rose Roy
    Russell Ruth Ryan Samantha Samuel Sandra Sara Sarah Scott Sean Sharon Shirley Sophia Sophie
    Stephanie Stephen Steven Susan Teresa Terry Thomas Timothy Tom Tyler Victoria Vincent Walter
    Wayne William Zachary
    Andreas Anja Birgit Dieter Elke Felix Florian Frank Franziska Hans Heike Helga Jan Jens
    Jonas Jörg Jürgen Karin Katharina Klaus Lena Leon Lukas Manfred Marco Markus Martin Max
    Michaela Monika Niklas Petra Ralf Sabine Sebastian Stefan Susanne Tobias Torsten Ursula
    Uwe Wolfgang
    Amélie Antoine Aurélie Camille Céline Chloé Clément Émilie Étienne François Françoise
    Guillaume Hélène Hugo Isabelle Jacques Julien Léa Louise Manon Mathieu Maxime Nathalie
    Nicolas Pierre Quentin Sandrine Sébastien Sylvie Théo Valérie Yves
    Alejandro Ana Carmen Diego Elena Fernando Francisco Javier Jorge José Juan Laura Lucía
    Luis Manuel Marta Miguel Pablo Pedro Rafael Raúl Rosa Sergio Sofía
    Alessandro Alessia Chiara Davide Federica Francesca Giovanni Giulia Giuseppe Lorenzo Luca
    Marco Matteo Paolo Roberto Silvia Simone Valentina
    Bram Daan Femke Joost Lotte Pieter Sanne Sem Thijs Willem
    Ana Beatriz Bruno Camila Fernanda Gabriel Gustavo João Larissa Leonardo Mariana Rafaela
    Thiago
    Aarav Aditya Amit Ananya Anil Anjali Arjun Deepak Divya Ganesh Kavya Krishna Lakshmi Meera
    Neha Nikhil Pooja Priya Rahul Raj Rajesh Ravi Rohan Sanjay Shreya Sunil Suresh Vikram Vijay
    Haruto Hiroshi Kenji Yuki Yuto Sakura Takashi Akira Naoko Yumi
    Ahmed Ali Fatima Hassan Mohammed Muhammad Omar Wei Li Ming Jun Min Ji Seo
"""
FIRST_NAMES = frozenset(_GIVEN_NAMES.split())

# Capitalised words that follow a greeting or a label without naming anyone: teams, the
# assistants and tools people greet ("Hi Claude,"), sign-offs ("Beste Grüße"), and the words
# of a company's name under a signature ("Hendriks Groep")
_NOT_NAMES = """
    All Everyone Team Sir Madam Sirs Colleagues Customer Customers Friends Folks Guys Hiring
    Manager Members Parent Parents Reader Readers Recipient Sir/Madam Student Students Support
    User Users Valued Whom Concern Dev Devs Developers Committee Board Community Hello Hi World
    String None True False Optional Required Type Value Name Field Text Str Int Any List Dict
    Column Table Default Unknown Example Test Foo Bar Admin Root System Service Server Client
    Mr Mrs Ms Dr Prof The This That It
    Dear Hey Hallo Bonjour Hola Ciao Olá Hoi Liebe Lieber Cher Chère Estimado Estimada Querido
    Querida Prezado Prezada Gentile Geachte
    Equipe Équipe Equipo Squadra Staff Sales Marketing Office Operations Department Group
    Claude Gemini Copilot Siri Alexa Bard Grok Llama Mistral Python Java Docker Linux Windows
    Google Microsoft Apple Amazon Slack Jira Excel
    Grüße Gruß Grüssen Groet Groeten Regards Wishes Saludos Saluti Abraços Cordialement
    Groep Stichting Royal Gruppe Holding Partners Group Associates Sons Brothers Bros Firma
    Verlag Stiftung Bank Consulting Services Solutions Systems Technologies International
    Industries Enterprises Company Corporation Corp Inc Ltd Ltda Srl Spa Grupo Hermanos Hijos
    Fils Frères Cie
"""
NOT_NAMES = frozenset(_NOT_NAMES.split())
# ...of which these are also surnames: a name's later word may be one ("Corinne Parent")
SURNAMES_TOO = frozenset({"Parent", "Sales", "Royal", "Bank", "Reader", "Staff"})
# Words that start or end the heading of an address that is no one's: a place ("New York",
# "Cape Town") or a kind of address ("Head Office", "Registered Address", "Main Entrance")
_PLACE_WORDS = """
    New San Santa Santo São Los Las Saint St Sankt Sainte Hong Tel Rio Buenos Kuala Cape Abu
    Mexico Salt Port Fort Mount Lake North South East West Upper Lower Great Little Bad Den
    City Town Village County Beach Springs Island Islands Heights Valley Park Bay Harbour Harbor
    Head Main Our Visit Postal Mailing Billing Shipping Return Returns Delivery Registered
    Entrance Reception Headquarters Branch Store Shop Warehouse Campus Building Address
"""
PLACE_WORDS = frozenset(_PLACE_WORDS.split())
