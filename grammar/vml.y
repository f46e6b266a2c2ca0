/* vml.y - the grammar of vml.  Actions only build AST nodes with spans;
 * every check belongs to a later pass (compiler/resolve.c, shape.c, ...). */
%require "3.6"
%define api.pure full
%define api.location.type {Span}
%define parse.error detailed
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {struct Lexer *lx}

%code requires {
#include "parse.h"
typedef void *yyscan_t;
}

%code provides {
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
}

%code {
#include <stdlib.h>
#include <string.h>

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                   \
  do {                                                                \
    if (N) {                                                          \
      (Cur).file = YYRHSLOC(Rhs, 1).file;                             \
      (Cur).lo = YYRHSLOC(Rhs, 1).lo;                                 \
      (Cur).hi = YYRHSLOC(Rhs, N).hi;                                 \
    } else {                                                          \
      (Cur).file = YYRHSLOC(Rhs, 0).file;                             \
      (Cur).lo = (Cur).hi = YYRHSLOC(Rhs, 0).hi;                      \
    }                                                                 \
  } while (0)

#define A (lx->arena)
#define NEW(k, loc) ast_new(A, N_##k, (loc))

static void yyerror(YYLTYPE *loc, yyscan_t scanner, struct Lexer *lx, const char *msg) {
  (void)scanner;
  if (strcmp(msg, "memory exhausted") == 0)
    msg = "the input nests too deeply (the parser's limit is 10000 levels)";
  diag_error(lx->diag, *loc, "%s", msg);
}

/* p(x | z): a call whose arguments after the bar are the conditions. */
static Node *conditional(Arena *a, Node *callee, Node *left, Node *right, Span s) {
  Node *n = ast_add(a, ast_new(a, N_CALL, s), callee);
  for (int i = 0; i < left->kids.len; i++) ast_add(a, n, left->kids.items[i]);
  n->ival = n->kids.len;
  for (int i = 0; i < right->kids.len; i++) ast_add(a, n, right->kids.items[i]);
  return n;
}

static Node *named(Node *n, const char *s) { n->str = s; return n; }
static Node *kids2(Arena *a, Node *n, Node *x, Node *y) {
  ast_add(a, n, x);
  return ast_add(a, n, y);
}
}

%union {
  long long ival;
  double num;
  const char *str;
  Node *node;
}

%token <str> IDENT "identifier" STRING "string"
%token <ival> INTEGER "integer"
%token <num> NUMBER "number"
%token IMPORT "import" AS "as" MODEL "model" FN "fn" NET "net" HYPER "hyper"
       DATA "data" FROM "from" IN "in" ENCODER "encoder" DECODER "decoder"
       PRIOR "prior" CRITIC "critic" IMPLICIT "implicit"
       AUTOREGRESSIVE "autoregressive" PARAM "param" INIT "init" LOSS "loss"
       TRAIN "train" STAGE "stage" MINIMIZE "minimize" MAXIMIZE "maximize"
       WITH "with" OVER "over" FREEZE "freeze" FOR "for" IF "if" ELSE "else"
       RETURN "return" LOG "log" KL "KL" EXPECT "E" FLOW "flow"
       THROUGH "through" ESTIMATOR "estimator" TRUE "true" FALSE "false"
       AND "and" OR "or" NOT "not" OROR "||" EQ "==" NE "!=" LE "<=" GE ">="

%type <str> keyword word
%type <node> file items item import fndef params params1 fparam shape dims
             model mitems mitem hyperbinds data role rolehead body block stmts
             stmt targets paramdecl train titems titem groups group
             expr primary args args1 arg exprs exprs1 names names1 optshape
             ifstmt fnbody dref

%destructor { (void)$$; } <node> <str>

%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/' '%' '@'
%precedence UMINUS

%start file

%%

file: items                   { lx->result = $1; $$ = $1; }
    ;

items: %empty                 { $$ = NEW(FILE, @$); }
     | items item             { $$ = $2 ? ast_add(A, $1, $2) : $1; $$->span = span_join($1->span, @2); }
     ;

item: import | fndef | model
    | error                   { $$ = NULL; }
    ;

import: IMPORT IDENT          { $$ = named(NEW(IMPORT, @$), $2); }
      | IMPORT IDENT AS IDENT { $$ = named(NEW(IMPORT, @$), $2); $$->str2 = $4; }
      ;

fndef: FN IDENT '(' params ')' fnbody  { $$ = kids2(A, named(NEW(FN, @$), $2), $4, $6); }
     | NET IDENT '(' params ')' fnbody { $$ = kids2(A, named(NEW(FN, @$), $2), $4, $6); $$->ival = 1; }
     ;

fnbody: block | '=' expr      { $$ = $2; }
      ;

params: %empty                { $$ = NEW(PARAMS, @$); }
      | params1
      | params1 ','
      ;

params1: fparam               { $$ = ast_add(A, NEW(PARAMS, @$), $1); }
       | params1 ',' fparam   { $$ = ast_add(A, $1, $3); $$->span = @$; }
       ;

fparam: IDENT                 { $$ = kids2(A, named(NEW(FPARAM, @$), $1), NULL, NULL); }
      | IDENT ':' shape       { $$ = kids2(A, named(NEW(FPARAM, @$), $1), $3, NULL); }
      | IDENT '=' expr        { $$ = kids2(A, named(NEW(FPARAM, @$), $1), NULL, $3); }
      | IDENT ':' shape '=' expr { $$ = kids2(A, named(NEW(FPARAM, @$), $1), $3, $5); }
      ;

shape: '[' dims ']'           { $$ = $2; $$->span = @$; }
     ;

dims: %empty                  { $$ = NEW(SHAPE, @$); }
    | exprs1                  { $$ = NEW(SHAPE, @$); $$->kids = $1->kids; }
    | exprs1 ','              { $$ = NEW(SHAPE, @$); $$->kids = $1->kids; }
    ;

model: MODEL IDENT '{' mitems '}' { $$ = named($4, $2); $$->span = @$; }
     ;

mitems: %empty                { $$ = NEW(MODEL, @$); }
      | mitems mitem          { $$ = $2 ? ast_add(A, $1, $2) : $1; }
      | mitems ';'            { $$ = $1; }
      ;

mitem: HYPER hyperbinds       { $$ = $2; $$->span = @$; }
     | data | role | paramdecl | train | fndef
     | LOSS word '=' expr     { $$ = ast_add(A, named(NEW(LOSS, @$), $2), $4); }
     | error                  { $$ = NULL; }
     ;

hyperbinds: IDENT '=' expr    { $$ = ast_add(A, NEW(HYPER, @$), ast_add(A, named(NEW(BIND, @$), $1), $3)); }
          | hyperbinds ',' IDENT '=' expr
            { Span s = span_join(@3, @5); $$ = ast_add(A, $1, ast_add(A, named(NEW(BIND, s), $3), $5)); }
          ;

data: DATA IDENT ':' IDENT shape FROM expr
        { $$ = named(NEW(DATA, @$), $2); $$->str2 = $4;
          ast_add(A, $$, $5); ast_add(A, $$, NULL); ast_add(A, $$, NULL); ast_add(A, $$, $7); }
    | DATA IDENT ':' IDENT '(' expr ')' shape FROM expr
        { $$ = named(NEW(DATA, @$), $2); $$->str2 = $4;
          ast_add(A, $$, $8); ast_add(A, $$, $6); ast_add(A, $$, NULL); ast_add(A, $$, $10); }
    | DATA IDENT ':' IDENT shape IN '[' expr ',' expr ']' FROM expr
        { $$ = named(NEW(DATA, @$), $2); $$->str2 = $4;
          Node *r = kids2(A, NEW(LIST, span_join(@6, @11)), $8, $10);
          ast_add(A, $$, $5); ast_add(A, $$, NULL); ast_add(A, $$, r); ast_add(A, $$, $13); }
    ;

role: rolehead body           { $$ = ast_add(A, $1, $2); $$->span = span_join(@1, @2); }
    ;

rolehead: ENCODER IDENT '(' names '|' names ')'
            { $$ = kids2(A, NEW(ROLE, @$), $4, $6); $$->str = "encoder"; $$->str2 = $2; }
        | DECODER IDENT '(' names '|' names ')'
            { $$ = kids2(A, NEW(ROLE, @$), $4, $6); $$->str = "decoder"; $$->str2 = $2; }
        | PRIOR IDENT '(' names ')'
            { $$ = kids2(A, NEW(ROLE, @$), $4, NULL); $$->str = "prior"; $$->str2 = $2; }
        | PRIOR IDENT '(' names '|' names ')'
            { $$ = kids2(A, NEW(ROLE, @$), $4, $6); $$->str = "prior"; $$->str2 = $2; }
        | CRITIC IDENT '(' params ')'
            { $$ = kids2(A, NEW(ROLE, @$), $4, NULL); $$->str = "critic"; $$->str2 = $2; }
        | rolehead IMPLICIT        { $$ = $1; $$->ival |= ROLE_IMPLICIT; $$->span = @$; }
        | rolehead AUTOREGRESSIVE  { $$ = $1; $$->ival |= ROLE_AUTOREGRESSIVE; $$->span = @$; }
        ;

body: block | '=' expr        { $$ = $2; }
    ;

names: names1
     ;

names1: IDENT                 { $$ = ast_add(A, NEW(LIST, @$), named(NEW(NAME, @1), $1)); }
      | names1 ',' IDENT      { $$ = ast_add(A, $1, named(NEW(NAME, @3), $3)); $$->span = @$; }
      ;

paramdecl: PARAM IDENT ':' shape
             { $$ = kids2(A, named(NEW(PARAMDECL, @$), $2), $4, NULL); }
         | PARAM IDENT ':' shape INIT expr
             { $$ = kids2(A, named(NEW(PARAMDECL, @$), $2), $4, $6); }
         ;

train: TRAIN '{' titems '}'   { $$ = $3; $$->span = @$; }
     ;

titems: %empty                { $$ = NEW(TRAIN, @$); }
      | titems titem          { $$ = $2 ? ast_add(A, $1, $2) : $1; }
      | titems ';'            { $$ = $1; }
      ;

titem: MINIMIZE word WITH expr OVER groups
         { $$ = kids2(A, named(NEW(STEP, @$), $2), $4, $6); $$->ival = 1; }
     | MAXIMIZE word WITH expr OVER groups
         { $$ = kids2(A, named(NEW(STEP, @$), $2), $4, $6); $$->ival = 1; $$->num = 1; }
     | INTEGER '*' MINIMIZE word WITH expr OVER groups
         { $$ = kids2(A, named(NEW(STEP, @$), $4), $6, $8); $$->ival = $1; }
     | INTEGER '*' MAXIMIZE word WITH expr OVER groups
         { $$ = kids2(A, named(NEW(STEP, @$), $4), $6, $8); $$->ival = $1; $$->num = 1; }
     | IDENT expr             { $$ = ast_add(A, named(NEW(SETTING, @$), $1), $2); }
     | FREEZE groups          { $$ = ast_add(A, NEW(FREEZE, @$), $2); }
     | STAGE word '{' titems '}'
         { $$ = $4; $$->kind = N_STAGE; $$->str = $2; $$->span = @$; }
     | error                  { $$ = NULL; }
     ;

groups: group                 { $$ = ast_add(A, NEW(LIST, @$), $1); }
      | groups ',' group      { $$ = ast_add(A, $1, $3); $$->span = @$; }
      ;

group: IDENT                  { $$ = named(NEW(NAME, @$), $1); }
     | group '.' IDENT        { $$ = named(NEW(NAME, @$), arena_printf(A, "%s.%s", $1->str, $3)); }
     ;

block: '{' stmts '}'          { $$ = $2; $$->span = @$; }
     ;

stmts: %empty                 { $$ = NEW(BLOCK, @$); }
     | stmts stmt             { $$ = $2 ? ast_add(A, $1, $2) : $1; }
     | stmts ';'              { $$ = $1; }
     ;

stmt: targets '=' expr        { $$ = kids2(A, NEW(ASSIGN, @$), $1, $3); }
    | IDENT '~' expr optshape
        { $$ = kids2(A, named(NEW(DRAW, @$), $1), $3, $4); }
    | IDENT '~' expr optshape ESTIMATOR IDENT
        { $$ = kids2(A, named(NEW(DRAW, @$), $1), $3, $4); $$->str2 = $6; }
    | paramdecl
    | FOR IDENT IN expr block { $$ = kids2(A, named(NEW(FOR, @$), $2), $4, $5); }
    | ifstmt
    | RETURN exprs1           { $$ = $2; $$->kind = N_RETURN; $$->span = @$; }
    | error                   { $$ = NULL; }
    ;

ifstmt: IF expr block         { $$ = kids2(A, NEW(IF, @$), $2, $3); ast_add(A, $$, NULL); }
      | IF expr block ELSE block  { $$ = kids2(A, NEW(IF, @$), $2, $3); ast_add(A, $$, $5); }
      | IF expr block ELSE ifstmt { $$ = kids2(A, NEW(IF, @$), $2, $3); ast_add(A, $$, $5); }
      ;

targets: names1
       ;

optshape: %empty              { $$ = NULL; }
        | ':' shape           { $$ = $2; }
        ;

expr: primary
    | expr '+' expr           { $$ = kids2(A, named(NEW(BINOP, @$), "+"), $1, $3); }
    | expr '-' expr           { $$ = kids2(A, named(NEW(BINOP, @$), "-"), $1, $3); }
    | expr '*' expr           { $$ = kids2(A, named(NEW(BINOP, @$), "*"), $1, $3); }
    | expr '/' expr           { $$ = kids2(A, named(NEW(BINOP, @$), "/"), $1, $3); }
    | expr '%' expr           { $$ = kids2(A, named(NEW(BINOP, @$), "%"), $1, $3); }
    | expr '@' expr           { $$ = kids2(A, named(NEW(BINOP, @$), "@"), $1, $3); }
    | expr EQ expr            { $$ = kids2(A, named(NEW(BINOP, @$), "=="), $1, $3); }
    | expr NE expr            { $$ = kids2(A, named(NEW(BINOP, @$), "!="), $1, $3); }
    | expr '<' expr           { $$ = kids2(A, named(NEW(BINOP, @$), "<"), $1, $3); }
    | expr LE expr            { $$ = kids2(A, named(NEW(BINOP, @$), "<="), $1, $3); }
    | expr '>' expr           { $$ = kids2(A, named(NEW(BINOP, @$), ">"), $1, $3); }
    | expr GE expr            { $$ = kids2(A, named(NEW(BINOP, @$), ">="), $1, $3); }
    | expr AND expr           { $$ = kids2(A, named(NEW(BINOP, @$), "and"), $1, $3); }
    | expr OR expr            { $$ = kids2(A, named(NEW(BINOP, @$), "or"), $1, $3); }
    | NOT expr                { $$ = ast_add(A, named(NEW(UNOP, @$), "not"), $2); }
    | '-' expr %prec UMINUS   { $$ = ast_add(A, named(NEW(UNOP, @$), "-"), $2); }
    | LOG dref                { $$ = ast_add(A, NEW(LOGP, @$), $2); }
    | FLOW primary THROUGH primary { $$ = kids2(A, NEW(FLOW, @$), $2, $4); }
    ;

primary: INTEGER              { $$ = NEW(INT, @$); $$->ival = $1; }
       | NUMBER               { $$ = NEW(FLOAT, @$); $$->num = $1; }
       | STRING               { $$ = named(NEW(STR, @$), $1); }
       | TRUE                 { $$ = NEW(BOOL, @$); $$->ival = 1; }
       | FALSE                { $$ = NEW(BOOL, @$); $$->ival = 0; }
       | IDENT                { $$ = named(NEW(NAME, @$), $1); }
       | '(' expr ')'         { $$ = $2; }
       | '[' exprs ']'        { $$ = $2; $$->span = @$; }
       | primary '.' IDENT    { $$ = ast_add(A, named(NEW(MEMBER, @$), $3), $1); }
       | primary '[' expr ']' { $$ = kids2(A, NEW(INDEX, @$), $1, $3); }
       | primary '(' args ')'
           { $$ = ast_add(A, NEW(CALL, @$), $1);
             for (int i = 0; i < $3->kids.len; i++) ast_add(A, $$, $3->kids.items[i]); }
       | primary '(' args1 '|' args1 ')' { $$ = conditional(A, $1, $3, $5, @$); }
       | LOG '(' args ')'
           { $$ = ast_add(A, NEW(CALL, @$), named(NEW(NAME, @1), "log"));
             for (int i = 0; i < $3->kids.len; i++) ast_add(A, $$, $3->kids.items[i]); }
       | KL '(' expr OROR expr ')' { $$ = kids2(A, NEW(KL, @$), $3, $5); }
       | EXPECT '[' expr ']'  { $$ = ast_add(A, NEW(EXPECT, @$), $3); }
       ;

dref: IDENT '(' args ')'
        { $$ = ast_add(A, NEW(CALL, @$), named(NEW(NAME, @1), $1));
          for (int i = 0; i < $3->kids.len; i++) ast_add(A, $$, $3->kids.items[i]); }
    | IDENT '(' args1 '|' args1 ')'
        { $$ = conditional(A, named(NEW(NAME, @1), $1), $3, $5, @$); }
    ;

/* Words reserved at the start of a model item, usable as the name of a
 * named argument, a loss or a stage (files(train = ...), loss model = ...). */
word: IDENT | keyword
    ;

keyword: TRAIN { $$ = "train"; } | MODEL { $$ = "model"; } | PRIOR { $$ = "prior"; }
       | DATA { $$ = "data"; } | ENCODER { $$ = "encoder"; } | DECODER { $$ = "decoder"; }
       | CRITIC { $$ = "critic"; } | STAGE { $$ = "stage"; } | LOSS { $$ = "loss"; }
       | PARAM { $$ = "param"; } | INIT { $$ = "init"; } | HYPER { $$ = "hyper"; }
       ;

args: %empty                  { $$ = NEW(LIST, @$); }
    | args1
    | args1 ','
    ;

args1: arg                    { $$ = ast_add(A, NEW(LIST, @$), $1); }
     | args1 ',' arg          { $$ = ast_add(A, $1, $3); }
     ;

arg: expr
   | IDENT '=' expr           { $$ = ast_add(A, named(NEW(NAMEDARG, @$), $1), $3); }
   | keyword '=' expr         { $$ = ast_add(A, named(NEW(NAMEDARG, @$), $1), $3); }
   | IDENT '~' primary        { $$ = ast_add(A, named(NEW(SAMPLEARG, @$), $1), $3); }
   ;

exprs: %empty                 { $$ = NEW(LIST, @$); }
     | exprs1
     | exprs1 ','
     ;

exprs1: expr                  { $$ = ast_add(A, NEW(LIST, @$), $1); }
      | exprs1 ',' expr       { $$ = ast_add(A, $1, $3); $$->span = @$; }
      ;

%%

#include "vml.lex.h"

enum { MAX_NESTING = 1000 };

/* Every later pass recurses over the tree; a tree deeper than any model
 * needs (a sum of 10^5 terms is 10^5 levels deep) is refused here, with a
 * walk that keeps its own stack. */
static void check_depth(Diag *d, Node *root) {
  typedef struct { Node *n; int depth; } Item;
  int cap = 256, top = 0;
  Item *stack = malloc(sizeof *stack * (size_t)cap);
  if (!stack) abort();
  stack[top++] = (Item){root, 0};
  while (top) {
    Item it = stack[--top];
    if (!it.n) continue;
    if (it.depth > MAX_NESTING) {
      diag_error(d, it.n->span, "this nests more than %d levels deep (a chain of %d operations or more)", MAX_NESTING,
                 MAX_NESTING);
      break;
    }
    for (int i = 0; i < it.n->kids.len; i++) {
      if (top == cap) {
        cap *= 2;
        stack = realloc(stack, sizeof *stack * (size_t)cap);
        if (!stack) abort();
      }
      stack[top++] = (Item){it.n->kids.items[i], it.depth + 1};
    }
  }
  free(stack);
}

Node *parse_file(Diag *d, Arena *a, int file) {
  struct Lexer lx = {d, a, file, 0, NULL};
  yyscan_t scanner;
  if (yylex_init_extra(&lx, &scanner)) return NULL;
  const SourceFile *f = &d->files[file];
  YY_BUFFER_STATE buf = yy_scan_bytes(f->text, f->len, scanner);
  int rc = yyparse(scanner, &lx);
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);
  (void)rc; /* every failure was reported through yyerror */
  if (!lx.result) lx.result = ast_new(a, N_FILE, span_make(file, 0, 0));
  check_depth(d, lx.result);
  return lx.result;
}
